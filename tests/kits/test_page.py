"""The page kit: what reaches the page is escaped, and a page is written whole, in place, with nothing to fetch."""

from __future__ import annotations

import base64
import re
import threading

import pytest

from shopfloor.kits import page
from shopfloor.kits.page import (
    escape,
    figure_to_img,
    importance_section,
    label,
    metrics_table,
    new_figure,
    number,
    page_header,
    plots,
    png_figure,
    section,
    table,
    training_log_section,
    write_page,
)

NASTY = 'line 3 <script>alert("x")</script> & \'$1\''
PNG = b"\x89PNG\r\n\x1a\n"


def test_escape_leaves_no_markup_of_the_user():
    assert escape(NASTY) == ("line 3 &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;$1&#x27;")
    assert escape(3.5) == "3.5" and escape(None) == "None"


def test_titles_headers_and_facts_are_escaped():
    assert section(NASTY, "<p>ok</p>") == f"<section><h2>{escape(NASTY)}</h2><p>ok</p></section>\n"
    header = page_header(NASTY, {"Target": NASTY, "<b>key</b>": 1}, 12.34, NASTY)
    assert "<script>" not in header and "<b>key</b>" not in header
    assert header.count(escape(NASTY)) == 3 and "&lt;b&gt;key&lt;/b&gt;" in header
    assert "12.3 s" in header and "shopfloor version" in header
    assert "2 min 5 s" in page_header("t", {}, 125.0, "o")


def test_table_headers_are_escaped_and_cells_kept_as_given():
    html = table(["<th>", "value"], [["<b>cell</b>", "1"]], ["", "number"])
    assert "<th>&lt;th&gt;</th>" in html and '<td class="">' "<b>cell</b></td>" in html
    assert '<td class="number">1</td>' in html
    with pytest.raises(ValueError):
        table(["a", "b"], [["only one"]], ["", ""])  # a row that does not fill the columns is a bug


def test_metrics_take_the_words_of_their_last_part():
    html = metrics_table({"failure f1": 0.5, NASTY: 2.0})
    assert page.METRIC_WORDS["f1"] in html and escape(NASTY) in html and "<script>" not in html
    assert '<td class="number">0.5000</td>' in html and '<td class="number">2</td>' in html
    assert "my words" in metrics_table({"score": 1.0}, {"score": "my words"})


def test_numbers():
    assert number(None) == "n/a" and number(float("inf")) == "n/a"
    assert number(0.5) == "0.5000" and number(12.3456) == "12.35" and number(2_500_000.4) == "2,500,000"


def test_labels_for_matplotlib_are_not_mathematics():
    assert label("cost $ per $ part") == r"cost \$ per \$ part"


def test_figures_are_inline_png_with_an_escaped_caption():
    fig, ax = new_figure()
    ax.plot([0, 1], [1, 0])
    html = figure_to_img(fig, NASTY)
    encoded = re.fullmatch(r'<figure><img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)">'
                           r"<figcaption>([^<]*)</figcaption></figure>", html)
    assert encoded and base64.b64decode(encoded[1])[:8] == PNG
    assert encoded[2] == encoded[3] == escape(NASTY)
    assert png_figure(PNG) == f'<figure><img src="data:image/png;base64,{base64.b64encode(PNG).decode()}" alt="plot"></figure>'
    assert plots(["a", "b"]) == '<div class="plots">ab</div>'
    assert plots(["a"], wide=True) == '<div class="plots" style="grid-template-columns: 1fr">a</div>'


def test_importance_shows_the_largest_first_and_says_how_many_are_left_out():
    importance = {f"sensor <{i}>": float(i) for i in range(page.TOP_FEATURES + 5)}
    html = importance_section(importance, "Sensor importance", "sensors", "how <measured>")
    assert html.startswith("<section><h2>Sensor importance</h2>")
    assert f"The top {page.TOP_FEATURES} of {page.TOP_FEATURES + 5} sensors are shown." in html
    assert "how &lt;measured&gt;" in html and html.count("<img") == 1
    assert "are shown" not in importance_section({"a": 1.0}, "t", "features", "n")


def test_training_log_has_a_column_for_every_key_of_any_entry():
    html = training_log_section([{"bag": 0, "valid_score": 0.25}, {"bag": 1, "epochs": "<7>"}], "<p>note</p>")
    assert "<th>bag</th><th>valid_score</th><th>epochs</th>" in html and "<p>note</p>" in html
    assert '<td class="number">0.2500</td>' in html and '<td class="number">&lt;7&gt;</td>' in html
    assert html.count("<tr>") == 3  # the head and one row per entry


def test_a_page_is_whole_self_contained_and_escaped(tmp_path):
    path = write_page(tmp_path / "deep" / "folder" / "page.html", NASTY, "<section>body</section>")
    assert path == tmp_path / "deep" / "folder" / "page.html"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert f"<title>{escape(NASTY)}</title>" in text and "<script" not in text
    assert "<main>\n<section>body</section>\n</main>" in text and page.CSS in text
    assert "http://" not in text and "https://" not in text and "<link" not in text


def test_a_page_replaces_the_old_one_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "page.html"
    path.write_text("old")
    write_page(path, "new", "")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]


def test_pages_written_at_once_are_each_whole(tmp_path):
    """The dashboard may write a page while another request writes the same one: readers see a whole page."""
    path = tmp_path / "page.html"
    bodies = [f"<p>{'x' * 50_000}{i}</p>" for i in range(4)]
    threads = [threading.Thread(target=write_page, args=(path, "t", body)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    text = path.read_text(encoding="utf-8")
    assert text.rstrip().endswith("</html>") and sum(body in text for body in bodies) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]
