"""The printable HTML of a report file (pure): Jinja2 with autoescaping (every value in a report
is hostile text), and a QR code (segno) of the report number and the file's SHA-256, so a
printed copy leads back to the exact signed file."""

from __future__ import annotations

from typing import Any

import segno
from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape
from markupsafe import Markup

from node.reports.envelope import digest, load_file
from node.reports.payload import SECTIONS
from node.text import inert

TEMPLATE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>公共信用信息报告 {{ p.report_number }}</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #999;padding:.3em;
vertical-align:top;text-align:left}.qr{float:right}</style></head><body>
<div class="qr">{{ qr }}</div>
<h1>公共信用信息报告（{{ "法人和非法人组织" if p.variant == "organisation" else "自然人" }}）</h1>
<p>报告编号 {{ p.report_number }}<br>出具节点 {{ p.issuer_city }} ({{ p.issuer }})<br>
出具时间 {{ p.issued_at }}<br>SHA-256 {{ sha }}</p>
<p>查询用途 {{ p.asked.purpose }} · 事项 {{ p.asked.matter }} · 查询人 {{ p.asked.officer }}
{% if p.asked.requester %} · 查询节点 {{ p.asked.requester }}{% endif %}</p>
{% if p.subject %}<h2>主体</h2><p>{{ p.subject.name }} · {{ p.subject.uscc }}</p>{% endif %}
{% if p.registration %}<h2>登记基本信息</h2><table>
<tr><th>登记管理部门</th><td>{{ p.registration.authority }}</td></tr>
<tr><th>机构类别</th><td>{{ p.registration.category }}</td></tr>
<tr><th>登记管理机关行政区划</th><td>{{ p.registration.division_code }}
{{ p.registration.division }}</td></tr></table>{% endif %}
{% for name, title in sections %}<h2>{{ title }}</h2>
{% set items = p.sections[name] %}{% if not items %}<p>无记录</p>{% endif %}
{% for i in items %}<table>
<tr><th>名单</th><td>{{ i.list_name }} ({{ i.list_code }})</td></tr>
<tr><th>事由</th><td>{{ i.reason }}</td></tr>
<tr><th>依据</th><td>{{ i.legal_basis }}</td></tr>
<tr><th>决定文书</th><td>{{ i.decision_doc_no }} {{ i.decision_date }}</td></tr>
<tr><th>认定部门</th><td>{{ i.authority_name }} {{ i.authority_uscc }}</td></tr>
<tr><th>措施</th><td>{% for m in i.measures %}{{ m.code }}（{{ "必须" if m.mandatory
 else "建议" }}）{% if not loop.last %}；{% endif %}{% endfor %}</td></tr>
<tr><th>列入 / 公示截止</th><td>{{ i.listing_date }} / {{ i.disclosure_end }}</td></tr>
{% for k, v in i.record.items() %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}
<tr><th>来源</th><td>{{ i.origin_city }} · {{ i.entry_id }} · 第 {{ i.leaf_index }} 项</td></tr>
{% for k, v in i.personal.items() %}<tr><th>{{ k }}</th><td>{{ v }}
（{{ p.forms.get(k, "") }}）</td></tr>{% endfor %}
</table>{% endfor %}{% endfor %}
<p>以 <code>creditnode report verify</code> 离线核验本报告文件。</p>
</body></html>
"""


def _shown(value: object) -> object:
    """Every value of the report as text: HTML-escaped (autoescape), and its control and bidi
    characters as visible escapes, so an origin's value cannot reorder or hide the page's
    text. Our own markup (the QR code) passes as it is."""
    return inert(value) if isinstance(value, str) and not isinstance(value, Markup) else value


_ENV = Environment(
    loader=DictLoader({"report.html": TEMPLATE}),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    finalize=_shown,
)


def qr_svg(number: str, sha256: str) -> str:
    """An inline SVG QR code of ``<number> sha256:<digest>``."""
    return str(segno.make(f"{number} sha256:{sha256}", error="m").svg_inline(scale=3))


def render_html(data: bytes) -> str:
    """The HTML page of a report file (parsed strictly; verify it separately)."""
    _, payload, _ = load_file(data)
    sha = digest(data)
    number = str(payload.get("report_number", ""))[:80]
    context: dict[str, Any] = {
        "p": payload, "sha": sha, "sections": SECTIONS,
        # segno draws the data as modules (no text of it enters the SVG): markup of our own.
        "qr": Markup(qr_svg(number, sha)),  # noqa: S704
    }  # fmt: skip
    return _ENV.get_template("report.html").render(**context)
