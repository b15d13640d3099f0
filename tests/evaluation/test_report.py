import base64
import re

from echossl.evaluation.report import write_report

_PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(50))


def test_report_escapes_data_and_embeds_figures(tmp_path):
    evil = "<script>alert(1)</script>"
    path = write_report(
        tmp_path / "report.html", f"Run {evil}",
        summary="first & second\n\nsecond paragraph",
        tables=[("Per video", [{"FileName": evil, "EF": 55.12345, "ci": [1.0, 2.5]},
                               {"FileName": "0X1", "EF": float("nan"), "extra": None}])],
        figures=[(f"fig {evil}", _PNG)],
    )
    html = path.read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "first &amp; second" in html
    assert "<td>55.12</td>" in html and "<td>[1, 2.5]</td>" in html
    assert "<th>extra</th>" in html  # union of keys
    data = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
    assert base64.b64decode(data) == _PNG
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
