"""The run's HTML report (code hidden, plots and tables shown, no network scripts) and summary."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

__all__ = ["render_notebook_html", "write_index"]

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"


def render_notebook_html(notebook: Path, out: Path) -> Path:
    """Executed notebook -> standalone HTML without inputs or prompts; no remote scripts."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    exporter = HTMLExporter(
        template_name="offline",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    body, _ = exporter.from_notebook_node(nb)
    out.write_text(body, encoding="utf-8")
    return out


def _rows(summary: dict[str, Any]) -> str:
    rows = []
    for name, stage in summary.get("stages", {}).items():
        status = stage.get("status", "?")
        headline = stage.get("headline", "")
        link = stage.get("html")
        name_html = f'<a href="{html.escape(link)}">{html.escape(name)}</a>' if link else html.escape(name)
        rows.append(f"<tr><td>{name_html}</td><td class='{html.escape(status)}'>{html.escape(status)}</td>"
                    f"<td>{html.escape(str(stage.get('exit_code', '')))}</td><td>{html.escape(headline)}</td></tr>")
    return "\n".join(rows)


def write_index(run_dir: Path, summary: dict[str, Any]) -> Path:
    """One page that links every stage's report and shows the headline numbers."""
    title = f"Delivery report {summary.get('run_id', '')}"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .3em .6em; text-align: left; }}
.ok {{ color: #186a3b; }} .problems {{ color: #9a6700; }} .failed, .error {{ color: #b03a2e; }}
pre {{ background: #f6f8fa; padding: 1em; overflow-x: auto; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Exit code <b>{summary.get('exit_code')}</b> &mdash; {html.escape(summary.get('verdict', ''))}</p>
<table><tr><th>stage</th><th>status</th><th>exit</th><th>headline</th></tr>
{_rows(summary)}
</table>
<h2>summary.json</h2>
<pre>{html.escape(json.dumps(summary, indent=2, sort_keys=True))}</pre>
</body></html>
"""
    out = run_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    return out
