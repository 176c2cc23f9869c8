"""CAP 1.2 checks shared by the alert tests: the OASIS schema and the namespaces.

``tests/data/CAP-v1.2.xsd`` is the OASIS CAP 1.2 schema as published (a byte-for-byte copy of the one in the
project's shared schemas), so a document that passes here passes the standard's own schema.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
ATOM = "{http://www.w3.org/2005/Atom}"
CAP_XSD = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "data" / "CAP-v1.2.xsd")))


def valid_cap(document: bytes | etree._Element) -> etree._Element:
    """The CAP ``alert`` element, after checking it against the schema (raises with the schema's reasons)."""
    root = etree.fromstring(document) if isinstance(document, bytes) else document
    CAP_XSD.assertValid(root)
    return root
