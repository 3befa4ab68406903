"""Ship ECS documents with elasticsearch-py's helpers.bulk; run as a script so the 8.x and 9.x
client lines (which cannot share one environment) each run in their own.

usage: python es_bulk_client.py URL BUILD_ID YYYY-MM-DDTHH:MM → prints {"client": …, "server": …, "ok": …}
"""

import json
import sys

from elasticsearch import Elasticsearch, __versionstr__, helpers


def main(url: str, build_id: str, at: str) -> None:
    es = Elasticsearch(url, request_timeout=10, max_retries=2, retry_on_status=(429, 502, 503, 504))
    info = es.info()  # GET /: the client checks the product header and the version
    docs = [
        {
            "_index": "logs-checkout",
            "_source": {
                "@timestamp": f"{at}:07.123456Z",
                "message": "payment gateway timeout",
                "log": {"level": "error", "logger": "gateway"},
                "service": {"name": "checkout"},
                "host": {"name": "web-12"},
                "build": {"id": build_id},
                "labels": {"region": "eu-west-1"},
                "http": {"response": {"status_code": 504}},
            },
        },
        {
            "_op_type": "create",
            "_index": "logs-checkout",
            "_source": {
                "@timestamp": f"{at}:08Z",
                "message": "retry succeeded",
                "log.level": "info",
                "service.name": "checkout",
                "host.name": "web-12",
                "build.id": build_id,
            },
        },
    ]
    ok, errors = helpers.bulk(es, docs)
    print(json.dumps({"client": __versionstr__, "server": info["version"]["number"], "ok": ok, "errors": errors}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
