"""How fast inference works, on our own model: tiled attention (flash.py), paged KV-cache memory (paging.py),
the rolling buffer of a sliding window and batched decoding with per-sequence caches (batched.py), and
prefill vs decode on a roofline (roofline.py)."""
