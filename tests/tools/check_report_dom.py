#!/usr/bin/env python3
"""Check the DOM Chromium built from omnimeter's HTML report, and its network log.

    python3 tests/tools/check_report_dom.py DOM.html NETLOG.json

Each section of the report exists and holds its chart (an <svg role="img"> with shapes)
or table; the net log shows no request except Chromium's own background pings.
"""
import re
import sys
from html.parser import HTMLParser

SECTIONS = {
    "headline": None,
    "chart-flow": "svg",
    "chart-resolution": "svg",
    "chart-resolution-distribution": "svg",
    "chart-friction": "svg",
    "chart-paths": "svg",
    "chart-attribution": "svg",
}
SHAPES = {"rect", "path", "circle", "line", "polyline", "polygon"}
# Chromium's own pings (updates, accounts, spell-check dictionaries), made whatever the page is.
BROWSER_HOSTS = ("google.com", "googleapis.com", "gstatic.com", "gvt1.com")


class Tree(HTMLParser):
    """Records, for every element with an id, the tags and text inside it."""

    def __init__(self):
        super().__init__()
        self.stack = []  # [(tag, id or None)]
        self.inside = {}  # id -> {"tags": [...], "text": str}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for _, i in self.stack:
            if i in self.inside:
                self.inside[i]["tags"].append((tag, a))
        if tag in ("br", "img", "meta", "link", "input", "hr"):
            return
        self.stack.append((tag, a.get("id")))
        if a.get("id"):
            self.inside.setdefault(a["id"], {"tags": [], "text": ""})

    def handle_startendtag(self, tag, attrs):
        a = dict(attrs)
        for _, i in self.stack:
            if i in self.inside:
                self.inside[i]["tags"].append((tag, a))

    def handle_endtag(self, tag):
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break

    def handle_data(self, data):
        for _, i in self.stack:
            if i in self.inside:
                self.inside[i]["text"] += data


def main():
    dom_path, netlog_path = sys.argv[1:3]
    t = Tree()
    t.feed(open(dom_path, encoding="utf-8").read())
    problems = []
    for sid, kind in SECTIONS.items():
        sec = t.inside.get(sid)
        if sec is None:
            problems.append("missing #%s" % sid)
            continue
        tags = [tag for tag, _ in sec["tags"]]
        if kind == "svg":
            svgs = [a for tag, a in sec["tags"] if tag == "svg"]
            if not svgs:
                problems.append("#%s has no <svg>" % sid)
            elif not any(a.get("role") == "img" for a in svgs):
                problems.append("#%s: its <svg> has no role=img" % sid)
            if not SHAPES & set(tags):
                problems.append("#%s: the chart draws nothing" % sid)
        if len(sec["text"].strip()) < 10:
            problems.append("#%s has no text" % sid)
        print("%-4s #%s (%d elements)" % ("ok" if not [p for p in problems if sid in p] else "FAIL", sid, len(tags)))
    headline = t.inside.get("headline", {"text": ""})["text"]
    if "101" not in headline:
        problems.append("headline does not show the 101 journeys: %r" % headline[:200])
    urls = set(re.findall(r'"url":"(https?://[^"/]+)', open(netlog_path, encoding="utf-8", errors="replace").read()))
    fetched = sorted(u for u in urls if not u.split("//", 1)[1].endswith(BROWSER_HOSTS))
    print("%-4s network: %s" % ("ok" if not fetched else "FAIL", fetched or "nothing fetched by the page"))
    if fetched:
        problems.append("the page fetched %s" % fetched)
    if problems:
        sys.exit("; ".join(problems))


if __name__ == "__main__":
    main()
