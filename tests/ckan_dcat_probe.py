"""Reads a DCAT catalogue with CKAN's own harvester code, ckanext-dcat's RDFParser, as a CKAN portal's DCAT harvester
(ckanext-dcat's ``dcat_rdf`` harvest source) does with a harvested document: fetch, parse, then one CKAN dataset
dict per ``dcat:Dataset`` through the configured profile, and the harvest's guid of each.

Run by the interpreter of CKAN's own environment (made by tests/api/test_open_data.py from PyPI's ckan and
ckanext-dcat under ~/.cache/mimamori/ckan-dcat), not the project's:
``python tests/ckan_dcat_probe.py URL PROFILE... [--rdf-format F] [--locale ja] [--licenses FILE]``.
No CKAN site, database or Solr is needed: the parser reads only CKAN's config (``ckan.locale_default``: the
language a title is taken in; ``licenses_group_url``: the licence register a licence URI or title is matched
against, CKAN's stock register without it). Prints one JSON line: the versions, how the document was fetched, and
for each profile the dataset dicts, the guids and the next page (Hydra paging).
"""

import argparse
import importlib.metadata
import json
from pathlib import Path

import requests
from ckan.common import config
from ckanext.dcat.processors import RDFParser


def guid(dataset: dict) -> str | None:
    """The harvest's identifier of a dataset, as ckanext-dcat's DCATHarvester._get_guid takes it (its URI, then
    dct:identifier): the harvester itself needs ckanext-harvest and a site, so its rule is restated here."""
    extras = {e["key"]: e["value"] for e in dataset.get("extras", [])}
    return dataset.get("uri") or extras.get("uri") or dataset.get("identifier") or extras.get("identifier")


def fetch(url: str) -> tuple[str, str | None, int]:
    """The document as DCATHarvester._get_content_and_type gets it: a HEAD first (a GET when that is refused), the
    body decoded as UTF-8, the format from the Content-Type; and the HEAD's status."""
    session = requests.Session()
    head = session.head(url, timeout=60)
    answer = session.get(url, timeout=60)
    answer.raise_for_status()
    content_type = answer.headers.get("content-type")
    return answer.content.decode("utf-8"), content_type.split(";", 1)[0] if content_type else None, head.status_code


def main() -> None:
    cli = argparse.ArgumentParser()
    cli.add_argument("url")
    cli.add_argument("profiles", nargs="+")
    cli.add_argument("--rdf-format", help="the harvest source's rdf_format; the Content-Type's without it")
    cli.add_argument("--locale", default="en")
    cli.add_argument("--licenses", type=Path)
    args = cli.parse_args()
    config["ckan.locale_default"] = args.locale
    if args.licenses:
        config["licenses_group_url"] = args.licenses.resolve().as_uri()
    content, content_type, head_status = fetch(args.url)
    rdf_format = args.rdf_format or content_type
    out: dict = {v: importlib.metadata.version(v) for v in ("ckan", "ckanext-dcat", "rdflib")} | {
        "head_status": head_status,
        "content_type": content_type,
        # DCATRDFHarvester.validate_config refuses an rdf_format rdflib has no parser for
        "rdf_format_accepted": rdf_format in RDFParser().supported_formats(),
        "profiles": {},
    }
    for profile in args.profiles:
        parser = RDFParser(profiles=[profile])
        parser.parse(content, _format=rdf_format)
        datasets = list(parser.datasets())
        out["profiles"][profile] = {
            "datasets": datasets,
            "guids": [guid(d) for d in datasets],
            "next_page": parser.next_page(),
        }
    print(json.dumps(out, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
