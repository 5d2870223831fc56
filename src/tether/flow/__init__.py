"""Flow control: key expressions now; concurrency, throttling and friends build on them."""
