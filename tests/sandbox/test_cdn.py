"""GET /datafiles/{sdk_key}.json: ETag / Last-Modified, 304s, 403, replacement while running."""

from __future__ import annotations

import json

import requests

from toolkit.datafile import load_datafile

from .bodies import body, conversion, post, visitor
from .conftest import FIXTURE_DATAFILE


def _get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, timeout=30)


def test_serves_the_datafile_with_validators(sandbox):
    r = _get(sandbox.datafile_url)
    assert r.status_code == 200
    assert r.text == FIXTURE_DATAFILE.read_text(encoding="utf-8")
    assert r.headers["ETag"].startswith('"') and r.headers["Last-Modified"].endswith("GMT")


def test_conditional_requests_get_304(sandbox):
    first = _get(sandbox.datafile_url)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    not_modified = _get(sandbox.datafile_url, **{"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["ETag"] == etag
    assert _get(sandbox.datafile_url, **{"If-Modified-Since": modified}).status_code == 304
    assert _get(sandbox.datafile_url, **{"If-None-Match": '"other"'}).status_code == 200
    assert _get(sandbox.datafile_url, **{"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200
    assert _get(sandbox.datafile_url, **{"If-Modified-Since": "garbage"}).status_code == 200


def test_unknown_sdk_key_gets_403(sandbox):
    assert _get(f"{sandbox.url}/datafiles/WrongKey.json").status_code == 403
    assert _get(f"{sandbox.url}/datafiles/{sandbox.sdk_key.lower()}.json").status_code == 403


def test_the_toolkit_datafile_client_reads_it_and_revalidates(sandbox, tmp_path):
    df = load_datafile(sandbox.datafile_url, cache_dir=tmp_path)
    assert df.revision == "42" and df.fetch.status == 200
    again = load_datafile(sandbox.datafile_url, cache_dir=tmp_path)
    assert again.fetch.status == 304 and again.revision == "42"


def test_replacing_the_datafile_while_running(sandbox):
    old = _get(sandbox.datafile_url)
    raw = json.loads(FIXTURE_DATAFILE.read_text(encoding="utf-8"))
    raw["revision"] = "43"
    raw["events"].append({"id": "40009", "key": "newsletter", "experimentIds": ["50001"]})
    r = requests.put(f"{sandbox.url}/admin/datafile", data=json.dumps(raw), timeout=30)
    assert r.status_code == 200 and r.json()["revision"] == "43"
    new = _get(sandbox.datafile_url, **{"If-None-Match": old.headers["ETag"]})
    assert new.status_code == 200 and new.json()["revision"] == "43"
    assert new.headers["ETag"] != old.headers["ETag"]
    # ingest and results follow the new datafile
    assert post(sandbox.events_url, body(visitor("u", conversion("newsletter", 1, entity_id="40009"))),
                strict=True).status_code == 204
    assert sandbox.stats()["datafile_revision"] == "43"


def test_a_broken_replacement_is_refused_and_the_old_one_kept(sandbox):
    r = requests.put(f"{sandbox.url}/admin/datafile", data=b'{"version": "4"}', timeout=30)
    assert r.status_code == 400 and r.json()["code"] == "bad_datafile"
    assert _get(sandbox.datafile_url).json()["revision"] == "42"
