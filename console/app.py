"""Entry point of the operator console: `streamlit run console/app.py`.

The console is served as an `st.App` so it can own one small HTTP route: the one that keeps an
operator signed in across reloads and tabs with an http-only cookie (see `browser_session`). Every
page is drawn by `console/main.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run console/app.py` puts only console/ on the path; the modules import `console.*`.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.starlette import App  # noqa: E402

from console.browser_session import routes  # noqa: E402

app = App(Path(__file__).resolve().parent / "main.py", routes=routes())
