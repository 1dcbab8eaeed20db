#!/usr/bin/env python3
"""Renders provider-sdk/README.md from README.template.md and the example's
sources, so the tutorial shows exactly the code that is built and tested.
Run from anywhere: python3 provider-sdk/docs/render-readme.py"""
import pathlib

sdk = pathlib.Path(__file__).resolve().parent.parent
example = sdk.parent / "examples" / "providers" / "system-info"
text = (sdk / "docs" / "README.template.md").read_text()
for marker, path in [
    ("@@WIT@@", example / "wit" / "system-info.wit"),
    ("@@MAIN@@", example / "src" / "main.rs"),
    ("@@INFO@@", example / "src" / "info.rs"),
]:
    text = text.replace(marker, path.read_text().rstrip("\n"))
(sdk / "README.md").write_text(text)
