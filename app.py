"""Transformer internals, live: the entry point. `streamlit run app.py`

The app is `app_shared.run_shell()`: the menu (`st.navigation` over `app_shared.PAGES`, the files in `pages/`),
the sidebar with what every page shares — the model (a shipped variant, or a Hugging Face folder on this machine)
and the prompt, mirrored into the URL so a link reopens the same view — and one line on what the current page
shows; then the chosen page runs inside it.
Each page calls `app_shared.require_shell()` first, which runs the same shell when a page finds itself
started without this file (Streamlit's legacy `pages/` mode on a fresh server's first deep link).
"""

from app_shared import run_shell

run_shell()
