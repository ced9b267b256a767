"""CausMatch app: ``streamlit run app/streamlit_app.py [-- --root DIR ... --checkpoint CKPT --checkpoint2 CKPT
--data DIR --split test]``.

Datasets and checkpoints are opened only inside the roots (``--root``, repeatable; by default the
repository's ``checkpoints/`` and ``assets/``), plus the folders named on this command line.

The entry script reads the link into the session's view once (``state.start``), draws the sidebar
(dataset, checkpoints, intervention), runs the selected page inside the single error panel, and
writes the view back to the URL so that a link reopens the same view (``state`` says how). Pages live
in ``app_pages/`` (not ``pages/``: ``st.navigation`` is used).
"""
import os

# Never reach the network for a model: a missing hub name must fail fast, not retry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from causmatch.runtime import configure  # noqa: E402

configure()  # process settings (OpenMP wait policy, MKL warm-up, allocator): before anything imports torch

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

APP_DIR = Path(__file__).resolve().parent
if str(APP_DIR) not in sys.path:  # `streamlit run` adds it; AppTest and imports from tests may not
    sys.path.insert(0, str(APP_DIR))

import streamlit as st  # noqa: E402

import state  # noqa: E402
from components import sidebar  # noqa: E402
from components.errors import plain, show_error, show_notices  # noqa: E402

PAGES = {
    "overview": ("app_pages/overview.py", "Overview", ":material/dashboard:"),
    "explore": ("app_pages/explore.py", "Explore a pair", ":material/image_search:"),
    "retrieval": ("app_pages/retrieval.py", "Retrieval", ":material/format_list_numbered:"),
    "failures": ("app_pages/failures.py", "Failure cases", ":material/report:"),
    "failing-pair": ("app_pages/failing_pair.py", "Failing pair", ":material/compare_arrows:"),
    "compare": ("app_pages/compare.py", "Compare checkpoints", ":material/compare:"),
}

HOME = "overview"  # the default page: served at "/"; "/overview" is sent there too (see pages())


def _to_home() -> None:
    """The hidden page at "/overview": never drawn — :func:`main` sends its runs to the default page."""


def pages() -> tuple[dict[str, st.Page], st.Page]:
    """(slug -> page, the hidden page at ``/HOME``). Every page answers at ``/<slug>``; the default page is
    served at "/" (Streamlit gives it no slug of its own), so a hidden page holds its slug."""
    found = {slug: st.Page(path, title=title, icon=icon, url_path="" if slug == HOME else slug,
                           default=(slug == HOME))
             for slug, (path, title, icon) in PAGES.items()}
    alias = st.Page(_to_home, title=PAGES[HOME][1], url_path=HOME, visibility="hidden")
    return found, alias


def main() -> None:
    st.set_page_config(page_title="CausMatch", page_icon=":material/join_inner:", layout="wide")
    found, alias = pages()
    page = st.navigation([*found.values(), alias])
    state.start(state.parse_args(), st.query_params.to_dict())
    if page.url_path == alias.url_path:  # "/overview": the Overview, at its address "/", with the link's view
        st.switch_page(found[HOME], query_params=state.link())
    state.keep()
    sidebar.draw()
    show_notices(state.take_notices())
    replaced = st.container()  # a link's values replaced while the page binds its widgets, shown on top
    try:
        page.run()
    except Exception as exc:  # noqa: BLE001 — the one place where any page error becomes the panel
        show_error(exc, where=page.title, redact=state.roots().redact)
    for message in state.link_warnings():
        replaced.warning(plain(message), icon=":material/link_off:")
    state.write_link()


# Streamlit runs this file as "__main__". Worker processes started with multiprocessing's "spawn"
# (the demo data builder uses them) import it again as "__mp_main__": they must not run the app.
if __name__ == "__main__":
    main()
