"""The fastnn command: info prints the configuration; bad arguments are usage errors."""
import pytest

import fastnn
from fastnn import cli


def test_info(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for what in ("fastnn", "kernel path (isa): " + fastnn.get_isa(), "gemm kernel: f32_gemm_",
                 "threads: ", "cuda: ", "fma peak"):
        assert what in out, what


def test_config_keys():
    c = fastnn._config.config()
    assert c["isa"] in c["supported_isas"]
    assert c["cache_sizes"]["l1d"] > 0 and len(c["gemm_blocks"]) == 3
    # what fastnn.cuda says (False on a machine without a GPU or without the CUDA build)
    assert c["cuda_available"] is fastnn.cuda.is_available()


def test_bad_arguments():
    with pytest.raises(SystemExit):
        cli.main(["nonsense"])
    with pytest.raises(SystemExit):
        cli.main(["info", "--bogus"])
