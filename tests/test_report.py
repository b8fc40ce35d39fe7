"""The HTML report of the tiny run (`snakemake --report`), opened as a reader opens it: in a real browser (headless
Chromium, Debian's package, installed here with apt-get when missing; skipped where it cannot be).

The report is a single-page JavaScript app, so what a reader sees is the DOM after its scripts ran (`--dump-dom`
after `--virtual-time-budget`): the landing page rendered from workflow/report/workflow.rst, the menu, and the
app's embedded data. To browse it as a reader clicks through it, a copy of the report gets one more script that
opens, through the app's own `app.setView`, every subcategory list and every result's info panel in turn and
writes what the menu showed into the page."""
import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from helpers import TEST_CONFIG, snakemake

pytestmark = pytest.mark.slow

# How docutils marks what it could not render: "System Message: ERROR/3 (<string>, line 7)" in a
# <div class="system-message">.
SYSTEM_MESSAGE = re.compile(r"System Message|system-message|(DEBUG|INFO|WARNING|ERROR|SEVERE)/[0-4]")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
# Clicks through the report: each subcategory's list, then each result's info panel (labels, caption); the menu's
# text of each view, by "category/subcategory" or result path, as JSON in <pre id="browsed">.
BROWSE = """<script>
window.addEventListener("load", function () {
  const views = [];
  for (const [category, subcategories] of Object.entries(categories))
    for (const subcategory of Object.keys(subcategories)) {
      views.push([null, {navbarMode: "menu"}]);  // as a reader goes back: a list is drawn anew only then
      views.push([category + "/" + subcategory, {navbarMode: "subcategory", category, subcategory}]);
    }
  for (const path of Object.keys(results))
    views.push([path, {navbarMode: "resultinfo", resultPath: path}]);
  const seen = {};
  function show(i) {
    if (i > 0 && views[i - 1][0]) seen[views[i - 1][0]] = document.querySelector("nav").innerText;
    if (i < views.length) {
      app.setView(views[i][1]);
      setTimeout(show, 100, i + 1);
    } else {
      const out = document.createElement("pre");
      out.id = "browsed";
      out.textContent = JSON.stringify(seen);
      document.body.appendChild(out);
    }
  }
  setTimeout(show, 500, 0);
});
</script>"""
VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def chromium() -> str:
    """The chromium executable; installed with apt-get (update, then install) when missing, else a skip."""
    if path := shutil.which("chromium"):
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and cannot be: installing it needs root and apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"chromium is not installed and `{' '.join(cmd)}` failed: {exc}")
        if proc.returncode != 0:
            pytest.skip(f"chromium is not installed and `{' '.join(cmd)}` failed ({proc.returncode}): "
                        f"{proc.stderr[-500:]}")
    if path := shutil.which("chromium"):
        return path
    pytest.skip("`apt-get install chromium` succeeded but no chromium executable is on PATH")


def rendered_dom(page: Path, profile: Path) -> str:
    """The page's DOM after its JavaScript ran, as headless Chromium renders it (a fresh profile)."""
    cmd = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=30000", "--dump-dom",
           page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "</html>" in proc.stdout, proc.stderr[-3000:]
    return proc.stdout


class _Text(HTMLParser):
    """The text of the first <tag> element, or of the first element of class ``css_class``."""

    def __init__(self, tag: str | None, css_class: str | None):
        super().__init__()
        self.tag, self.css_class, self.depth, self.done, self.parts = tag, css_class, 0, False, []

    def handle_starttag(self, tag, attrs):
        if tag in VOID_ELEMENTS:  # no end tag follows
            return
        if self.depth:
            self.depth += 1
        elif not self.done and (tag == self.tag or self.css_class in (dict(attrs).get("class") or "").split()):
            self.depth = 1

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1
            self.done = not self.depth

    def handle_data(self, data):
        if self.depth:
            self.parts.append(data)


def words(text: str) -> str:
    return " ".join(text.split())


def element_text(dom: str, tag: str | None = None, css_class: str | None = None) -> str:
    parser = _Text(tag, css_class)
    parser.feed(dom)
    return words(" ".join(parser.parts))


def embedded(dom: str, name: str) -> dict:
    """A data object the report app was given (``var results = {...};`` in <script id="results">)."""
    match = re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', dom, re.S)
    assert match, f"no <script id={name!r}> in the rendered report"
    return json.loads(match.group(1))


def data_lines(run: Path) -> dict[str, str]:
    """{pair: its data}, as the first line of the pair's Table 1/2 (a ``#`` comment of deepmerge_da.report.tables)
    says."""
    lines = {}
    for pair, table in (("sim2sim", "table1_sim2sim"), ("sim2real", "table2_sim2real")):
        first = (run / f"results/tables/{table}.csv").read_text().splitlines()[0]
        assert first.startswith("# ") and ". Data: " in first, first
        lines[pair] = first.split(". Data: ", 1)[1]
    return lines


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory):
    """The tiny run's report, built once: (run directory, report.html, a scratch directory)."""
    out = tmp_path_factory.mktemp("report")
    built = snakemake(tiny_run, "--report", str(out / "report.html"), "--configfile", TEST_CONFIG)
    assert built.returncode == 0, built.stderr[-3000:]
    return tiny_run, out / "report.html", out


def test_the_landing_page_renders_and_says_what_the_run_is(report):
    run, page, out = report
    dom = rendered_dom(page, out / "profile-landing")
    messages = sorted({m.group(0) for m in SYSTEM_MESSAGE.finditer(dom)})
    assert not messages, f"docutils could not render part of the report: {messages}"
    landing = element_text(dom, css_class="prose")  # the app's first view: the rendered workflow description
    assert landing.startswith("DeepMerge-DA"), landing[:500]
    for description in data_lines(run).values():
        assert "synthetic" in description and f"{description}." in landing, (description, landing)

    # The headline: DeepMerge's target accuracy per method over seeds beside the paper's, from Tables B2/B4.
    for name in ("tableB2_sim2sim_seeds", "tableB4_sim2real_seeds"):
        table = pd.read_csv(run / f"results/tables/{name}.csv", comment="#")
        assert name + ".csv" in landing
        for row in table[table.domain == "target"].itertuples():
            ours = f"{row.accuracy:.2f}" + (f" ± {row.accuracy_std:.3f}" if row.n_seeds > 1 else "")
            collapsed = row.n_collapsed if pd.notna(row.n_collapsed) else 0
            seeds = f"{row.n_seeds}" + (f" ({collapsed:.0f} collapsed to one class)" if collapsed else "")
            paper = (f"{row.accuracy_paper:.2f} ± {row.accuracy_std_paper:.3f}" if pd.notna(row.accuracy_paper)
                     else "–")
            assert f" {row.method} {ours} {seeds} {paper} " in landing, (name, row, landing)

    stamp = json.loads((run / "results/environment.json").read_text())
    assert "environment.json" in landing and stamp["cpu_model"] in landing
    assert re.search(rf'"torch" ?: ?"{re.escape(stamp["packages"]["torch"])}"', landing), landing  # the JSON


def test_every_figure_and_table_is_filed_by_pair_with_labels_and_data(report):
    run, page, out = report
    browse = out / "browse.html"
    head, body_end, tail = page.read_text().rpartition("</body>")
    browse.write_text(head + BROWSE + body_end + tail)
    dom = rendered_dom(browse, out / "profile-browse")
    results, categories = embedded(dom, "results"), embedded(dom, "categories")
    match = re.search(r'<pre id="browsed">(.*?)</pre>', dom, re.S)
    assert match, "the report app did not finish browsing its results"
    menus = {view: words(text) for view, text in json.loads(html.unescape(match.group(1))).items()}
    filed = {path: (category, subcategory) for category, subcategories in categories.items()
             for subcategory, paths in subcategories.items() for path in paths}

    descriptions = data_lines(run)
    figures = sorted((run / "results/figures").rglob("*.png"))
    tables = sorted((run / "results/tables").glob("*.csv"))
    assert len(figures) > 20 and len(tables) == 8
    for path in (str(p.relative_to(run)) for p in figures + tables):
        assert path in results and path in filed, f"{path} is not in the report"
        category, subcategory = filed[path]
        pair = next(p for p in descriptions if p in path)
        assert category == pair, (path, filed[path])
        labels = results[path]["labels"]
        assert labels, f"{path} has no labels"
        # Its row in its subcategory's list: the label values, in the list's column order.
        assert " ".join(map(str, labels.values())) in menus[f"{category}/{subcategory}"], (path, labels)
        info = menus[path]  # its info panel: labels and the rendered caption
        assert descriptions[pair] in info and not SYSTEM_MESSAGE.search(info + results[path]["caption"]), info
    for path in (p for p in results if "/training/" in p):
        network, method, seed = re.fullmatch(r".*/([a-z0-9]+)_(\w+)_seed(\d+)\.png", path).groups()
        assert results[path]["labels"] == {"network": network, "method": method, "seed": seed}, path
    assert filed["results/environment.json"][0] == "Run"
