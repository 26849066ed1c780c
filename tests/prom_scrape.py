#!/usr/bin/python3
"""prom_scrape.py URL TOKEN: scrape a Prometheus endpoint with a bearer
token, parse it with prometheus_client's text parser (python3-prometheus-
client), and print one JSON object: "name{label=value,...}" -> value for
every sample (labels sorted), plus "_families" -> {family: type}.
Exits 1 when the text does not parse.  Used by tests/t_http.c."""
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

url, token = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
with urllib.request.urlopen(req, timeout=30) as r:
    ctype = r.headers.get("Content-Type", "")
    text = r.read().decode("utf-8")
out = {"_families": {}, "_content_type": ctype}
try:
    for fam in text_string_to_metric_families(text):
        out["_families"][fam.name] = fam.type
        for s in fam.samples:
            labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
            out["%s{%s}" % (s.name, labels)] = s.value
except Exception as e:  # the parser raises ValueError and others
    print("parse error: %s" % e, file=sys.stderr)
    sys.exit(1)
print(json.dumps(out))
