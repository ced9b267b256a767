"""Rendering helpers for the app pages: no maths here, only drawing what ``causmatch`` computed."""
