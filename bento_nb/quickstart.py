"""``bento-nb quickstart``: the seed tutorial in one command.

Trains the iris SVC, packs it as ``IrisClassifier``, serves it on 127.0.0.1, sends the
tutorial's request over HTTP and prints the URL and the predictions; then stops the server
(or keeps it up with ``--keep-serving``).
"""

from __future__ import annotations

import json
import time
import urllib.request

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]


def main(port: int = 5000, keep_serving: bool = False) -> int:
    from sklearn import datasets, svm

    from .server import serve
    from .service import pack

    X, y = datasets.load_iris(return_X_y=True)
    clf = svm.SVC(gamma="scale").fit(X, y)
    print("trained an SVC on iris")
    bundle = pack(clf, name="IrisClassifier")
    print(f"packed {bundle.tag} at {bundle.path}")

    server = serve(bundle.tag, port=port, port_fallback=True)
    try:
        if server.moved_from:
            print(f"port {server.moved_from} is busy; using {server.port}")
        print(f"serving {bundle.tag} at {server.url}  (Swagger UI: {server.docs_url})")
        request = urllib.request.Request(f"{server.url}/predict", data=json.dumps(ROWS).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            predictions = json.loads(response.read())
        print(f"POST {server.url}/predict {json.dumps(ROWS)}")
        print(f"predictions: {predictions}")
        if keep_serving:
            print("serving until Ctrl-C; try: curl -H 'Content-Type: application/json' "
                  f"-d '[[5.1,3.5,1.4,0.2]]' {server.url}/predict")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print(f"stopped the server; serve the bundle again with: bento-nb serve {bundle.name}")
    return 0
