"""Transformer internals, live: the entry point. `streamlit run app.py`

Routes with `st.navigation` over the pages in `pages/` (each page calls `app_shared.require_shell()` first,
so that a deep link that Streamlit's legacy `pages/` mode serves without this file still gets it).
The sidebar holds what every page shares — the
model variant and the prompt (in `st.session_state`, mirrored into the URL so a link reopens the same view)
— and one line on what the current page shows.
"""

import streamlit as st

from app_shared import DEFAULT_PROMPT, MAX_PROMPT_CHARS, repair_text, sync_url, url_choice, url_text, variant_label
from model.net.checkpoints import DEFAULT_VARIANT, VARIANTS

st.set_page_config(page_title="Transformer internals, live", page_icon=":material/hub:", layout="wide")

# (file, title, icon, what am I looking at)
PAGES = [
    ("pages/home.py", "The whole path", ":material/route:",
     "One prompt's trip through the model, stage by stage, with the live tensor shapes."),
    ("pages/tokenization.py", "Tokenization", ":material/text_fields:",
     "How text becomes token ids: our Shakespeare BPE beside GPT-4's, and the merges that build a word."),
    ("pages/embeddings.py", "Embeddings", ":material/scatter_plot:",
     "The vector each token starts as, where it sits among the vocabulary, and how position gets in."),
    ("pages/attention.py", "Attention", ":material/grid_view:",
     "Every head's attention pattern, one head zoomed with its raw scores, and what each head seems to do."),
    ("pages/logit_lens.py", "Layer by layer", ":material/layers:",
     "The logit lens: what the model would predict if it stopped after each block."),
    ("pages/generation.py", "Generation", ":material/play_arrow:",
     "One click, one decode step: the distribution, the sampling choice and the KV cache growing."),
    ("pages/rope.py", "Positions (RoPE)", ":material/360:",
     "RoPE's rotations on the model's own queries and keys, and what the other variants use instead."),
    ("pages/compare.py", "Compare variants", ":material/compare:",
     "MHA vs GQA vs MQA and five positional encodings, measured on models trained alike."),
    ("pages/accounting.py", "Parameters, FLOPs, memory", ":material/calculate:",
     "Exact counts for our model or any Llama/Mistral/Qwen2/Gemma/GPT-2 config, checked against PyTorch."),
]

from pathlib import Path  # noqa: E402

_here = Path(__file__).parent
pages = [st.Page(str(f), title=t, icon=i, default=(f == "pages/home.py")) for f, t, i, _ in PAGES if (_here / f).exists()]
blurbs = {t: b for _, t, _, b in PAGES}
pg = st.navigation(pages)

with st.sidebar:
    url_choice("variant", list(VARIANTS), DEFAULT_VARIANT)
    st.selectbox("Model variant", list(VARIANTS), key="variant", format_func=variant_label)
    url_text("prompt", DEFAULT_PROMPT, MAX_PROMPT_CHARS)
    repair_text("prompt")
    st.text_area("Prompt", key="prompt", height=140, max_chars=MAX_PROMPT_CHARS,
                 help="Shared by every page. Plain text: anything you type is shown as text, never as HTML.")
    st.caption(f":material/visibility: **What am I looking at?** {blurbs.get(pg.title, '')}")
    sync_url("variant", "prompt")

pg.run()
