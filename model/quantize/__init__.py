"""Quantization: our model's weights at int8 and int4, and its KV cache at int8.

formats.py  the formats as data (int8 per channel, llama.cpp's Q8_0 and Q4_0, int4 in groups of G), their
            bits per weight with the scales counted, and the round trip weights → codes + scales → weights
apply.py    a quantized copy of a model (the shared one is never touched) and the Q8_0 KV cache
measure.py  held-out loss per format, and PyTorch's own int8 kernels timed against fp32
cli.py      `python -m model.quantize` (results/quantization.json is its output)
"""
