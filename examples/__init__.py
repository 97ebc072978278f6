"""Runnable examples; installed as fastnn.examples so `fastnn demo` can run them."""
