"""The `fastnn` command: info, demo, bench."""
import argparse
import importlib
import os
import sys
import time


def _import_examples():
    """fastnn.examples when installed from a wheel; the repository's examples/ in a checkout."""
    try:
        return importlib.import_module("fastnn.examples")
    except ImportError:
        repo = os.path.join(os.path.dirname(__file__), "..", "..")
        sys.path.insert(0, os.path.abspath(repo))
        return importlib.import_module("examples")


def _example(name):
    pkg = _import_examples()
    return importlib.import_module(f"{pkg.__name__}.{name}")


def cmd_info(args):
    import fastnn
    fastnn.show_config(peak=True)
    return 0


def cmd_demo(args):
    import fastnn
    if args.threads:
        fastnn.set_num_threads(args.threads)
    show = not args.no_progress
    t_all = time.perf_counter()
    print("== StatQuest BasicNN (Introduction to PyTorch) ==")
    basic = _example("statquest_basic_nn")
    basic.main()
    try:
        path = basic.plot(os.path.join(args.out, "basic_nn_dose_effectiveness.png"))
        print(f"plot of the dose-effectiveness curve written to {path}")
    except ImportError:
        print("(install matplotlib, e.g. pip install 'fastnn[plot]', for the dose curve plot)")

    print("\n== StatQuest backpropagation: softplus network, SSR ==")
    _example("statquest_backprop").main()

    print("\n== Chapter 2: ReLU network without output bias ==")
    _example("statquest_relu_net").main()

    print("\n== StatQuest iris: SoftMax, ArgMax, cross-entropy ==")
    _example("statquest_iris").main(show=show)

    print("\n== MLP on the digits data set ==")
    _example("digits_mlp").main(show=show)

    print("\n== StatQuest LSTM (by hand and nn.LSTM); LSTM on a noisy sine wave ==")
    _example("statquest_lstm").main()
    _example("sequence_lstm").main(show=show)
    print("\n== StatQuest CNN: O or X in a 6x6 image ==")
    _example("statquest_cnn").main()

    print("\n== CNN on the digits data set ==")
    _example("digits_cnn").main(show=show)
    print(f"\ndemo finished in {time.perf_counter() - t_all:.1f} s "
          f"({fastnn.get_isa()} kernels, {fastnn.get_num_threads()} threads)")
    return 0


def cmd_bench(args, rest):
    try:
        run = importlib.import_module("fastnn.bench.run")
    except ImportError:
        repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
        sys.path.insert(0, repo)
        run = importlib.import_module("bench.run")
    return run.main(rest) or 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastnn", description="fastnn command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, CPU features and kernel path, threads, CUDA")
    demo = sub.add_parser("demo", help="run the StatQuest examples and the digits MLP")
    demo.add_argument("--out", default=".", help="folder for the plot (default: current)")
    demo.add_argument("--threads", type=int, default=0, help="threads (default: all CPUs)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    sub.add_parser("bench", help="run the benchmark harness (bench/run.py); pass its options "
                                 "after 'bench', e.g. fastnn bench --quick", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        return cmd_bench(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return {"info": cmd_info, "demo": cmd_demo}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
