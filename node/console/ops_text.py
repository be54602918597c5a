"""The strings of the operator's and auditor's pages, in zh-CN and English (pure).

Kept apart from node.console.i18n (the officer pages' catalogue); templates call ``tr(key)``,
which falls back to English, then to the key.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar, cast

from node.text import plain

TEXT: Final[dict[str, dict[str, str]]] = {
    "zh-CN": {
        "op.title": "节点运维",
        "op.alliance": "联盟概览",
        "op.peers": "节点",
        "op.feeds": "数据源",
        "op.alerts": "分叉与篡改告警",
        "op.keys": "密钥与有效期",
        "op.policy": "共享策略",
        "op.import": "导入名单",
        "op.charts": "随时间变化（指标历史）",
        "op.no_alerts": "没有告警。",
        "op.evidence": "下载证据",
        "op.warnings": "警告",
        "op.certificates": "证书",
        "op.roots": "信任根",
        "op.explain": "逐字段说明",
        "op.check": "策略检查",
        "op.problems": "问题",
        "op.agreements": "协议",
        "op.dry_run": "试运行（不写入）",
        "op.confirm": "确认导入",
        "op.progress": "导入进度",
        "op.list": "名单",
        "op.file": "文件",
        "op.changes": "变更",
        "op.quarantined": "隔离的行",
        "op.refused": "导入将被拒绝",
        "op.state": "状态",
        "op.reason": "原因",
        "op.show": "显示",
        "au.title": "审计",
        "au.log": "审计日志",
        "au.filter": "筛选",
        "au.verify": "校验",
        "au.verify_run": "运行校验",
        "au.ok": "全部通过校验",
        "au.bad": "发现问题",
        "au.first_bad": "首个错误序号",
        "au.export": "导出",
        "au.bundle": "导出审计包",
        "au.evidence": "分叉证据",
        "au.reconcile": "与伙伴对账",
        "au.agree": "双方一致",
        "au.gaps": "不一致的交换",
        "au.from": "起（上海时间）",
        "au.to": "止",
        "au.peer": "伙伴",
        "au.matched": "匹配条目",
    },
    "en": {
        "op.title": "Operations",
        "op.alliance": "The alliance",
        "op.peers": "Peers",
        "op.feeds": "Feeds",
        "op.alerts": "Fork and tamper alerts",
        "op.keys": "Keys and expiry",
        "op.policy": "Sharing policy",
        "op.import": "Import a list",
        "op.charts": "Over time (metrics history)",
        "op.no_alerts": "No alerts.",
        "op.evidence": "Download evidence",
        "op.warnings": "Warnings",
        "op.certificates": "Certificates",
        "op.roots": "Roots of trust",
        "op.explain": "Field by field",
        "op.check": "Policy check",
        "op.problems": "Problems",
        "op.agreements": "Agreements",
        "op.dry_run": "Dry run (nothing appended)",
        "op.confirm": "Confirm the import",
        "op.progress": "Import progress",
        "op.list": "List",
        "op.file": "File",
        "op.changes": "Changes",
        "op.quarantined": "Quarantined rows",
        "op.refused": "The import would be refused",
        "op.state": "State",
        "op.reason": "Reason",
        "op.show": "Show",
        "au.title": "Audit",
        "au.log": "Audit log",
        "au.filter": "Filter",
        "au.verify": "Verify",
        "au.verify_run": "Run the verification",
        "au.ok": "Everything verifies",
        "au.bad": "Findings",
        "au.first_bad": "First bad index",
        "au.export": "Export",
        "au.bundle": "Export the audit bundle",
        "au.evidence": "Fork evidence",
        "au.reconcile": "Reconcile with a partner",
        "au.agree": "Both sides agree",
        "au.gaps": "Exchanges the sides do not agree on",
        "au.from": "From (Shanghai time)",
        "au.to": "To",
        "au.peer": "Partner",
        "au.matched": "matching entries",
    },
}


def tr(lang: str, key: str) -> str:
    """*key* in *lang*, else English, else the key."""
    return TEXT.get(lang, {}).get(key) or TEXT["en"].get(key) or key


T = TypeVar("T")


def shown(value: T) -> T:
    """*value* (a JSON-like document) with every string one line of inert text: a control or
    bidi character from the wire or the store is shown as a visible escape, never acted on
    (the templates escape markup on top). Tuples come back as lists."""
    return cast(T, _shown(value))


def _shown(value: Any) -> Any:
    if isinstance(value, str):
        return plain(value)
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shown(v) for v in value]
    return value
