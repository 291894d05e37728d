#!/usr/bin/python3
"""bench/dmarc_import_python.py: the peer of bench/dmarc_bench, DMARC
aggregate reports imported with nothing but Python's standard library.

Owns the peer's reading and storing.  It walks DIR in name order, tells
XML, gzip and zip apart by their first bytes (as sealpost does), reads
each report with xml.etree.ElementTree.iterparse straight from the
decompressing stream, clearing every record once read, and keeps what
sealpost keeps: a row per report, per record, and per DKIM and SPF
result, enumerations in lower case, a report already seen (same org_name
and report_id) skipped.  Each report's rows go into a SQLite database at
DB with executemany once the report is read, all reports in one
transaction (one commit in all), in WAL mode with synchronous=FULL as in
sealpost's store.

Prints one JSON line: reports, records, messages, duplicates, refused.
Exit status 0, or 1 when a file cannot be read at all.
"""
import gzip
import json
import os
import sqlite3
import sys
import xml.etree.ElementTree as ET
import zipfile

SCHEMA = """
CREATE TABLE reports (id INTEGER PRIMARY KEY, org_name TEXT NOT NULL,
    report_id TEXT NOT NULL, email TEXT, begin_time INTEGER,
    end_time INTEGER, domain TEXT, adkim TEXT, aspf TEXT, p TEXT, sp TEXT,
    pct INTEGER, source TEXT, UNIQUE (org_name, report_id));
CREATE TABLE records (id INTEGER PRIMARY KEY, report INTEGER NOT NULL,
    source_ip TEXT NOT NULL, count INTEGER NOT NULL, disposition TEXT,
    dkim TEXT, spf TEXT, reasons TEXT, header_from TEXT,
    envelope_from TEXT, envelope_to TEXT);
CREATE TABLE dkim (record INTEGER NOT NULL, domain TEXT, selector TEXT,
    result TEXT, human_result TEXT);
CREATE TABLE spf (record INTEGER NOT NULL, domain TEXT, scope TEXT,
    result TEXT, human_result TEXT);
"""

ENUMERATED = {"disposition", "dkim", "spf", "result", "scope", "type", "p",
              "sp", "adkim", "aspf"}


def local(tag):
    return tag.rsplit("}", 1)[-1]


def text(element, name):
    """The stripped text of the child called name, or None."""
    for child in element:
        if local(child.tag) == name:
            value = (child.text or "").strip()
            if name in ENUMERATED:
                value = value.lower()
            return value
    return None


def child(element, name):
    for found in element:
        if local(found.tag) == name:
            return found
    return None


def children(element, name):
    return [found for found in element if local(found.tag) == name]


class Store:
    """The database, and one transaction open from the first report to
    the last."""

    def __init__(self, db):
        self.connection = sqlite3.connect(db, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute("PRAGMA synchronous = FULL")
        self.connection.executescript(SCHEMA)
        self.connection.execute("BEGIN IMMEDIATE")
        self.seen = set()
        self.reports = 0
        self.records = 0
        self.messages = 0
        self.duplicates = 0
        self.refused = 0

    def add(self, source, stream):
        """Parse one report from stream; its rows once it is complete."""
        report_id = self.reports + 1
        record_id = self.records
        records, dkim, spf, messages = [], [], [], 0
        meta, policy = None, None
        for _, element in ET.iterparse(stream, events=("end",)):
            name = local(element.tag)
            if name == "record":
                record_id += 1
                row = child(element, "row")
                evaluated = child(row, "policy_evaluated")
                ids = child(element, "identifiers")
                results = child(element, "auth_results")
                count = int(text(row, "count"))
                reasons = [[text(r, "type"), text(r, "comment")]
                           for r in children(evaluated, "reason")]
                records.append((record_id, report_id,
                                text(row, "source_ip"), count,
                                text(evaluated, "disposition"),
                                text(evaluated, "dkim"),
                                text(evaluated, "spf"),
                                json.dumps(reasons),
                                text(ids, "header_from"),
                                text(ids, "envelope_from"),
                                text(ids, "envelope_to")))
                messages += count
                if results is not None:
                    for found in children(results, "dkim"):
                        dkim.append((record_id, text(found, "domain"),
                                     text(found, "selector"),
                                     text(found, "result"),
                                     text(found, "human_result")))
                    for found in children(results, "spf"):
                        spf.append((record_id, text(found, "domain"),
                                    text(found, "scope"),
                                    text(found, "result"),
                                    text(found, "human_result")))
                element.clear()
            elif name == "report_metadata":
                meta = element
            elif name == "policy_published":
                policy = element

        # A report already stored is skipped, as sealpost skips it.
        org = text(meta, "org_name")
        email = text(meta, "email")
        if not org and email and "@" in email:
            org = email.rsplit("@", 1)[1]
        key = (org, text(meta, "report_id"))
        if key in self.seen:
            self.duplicates += 1
            return
        self.seen.add(key)
        dates = child(meta, "date_range")
        pct = text(policy, "pct")
        execute = self.connection.executemany
        execute("INSERT INTO reports VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(report_id, org, key[1], email,
                  int(float(text(dates, "begin"))),
                  int(float(text(dates, "end"))),
                  text(policy, "domain"), text(policy, "adkim"),
                  text(policy, "aspf"), text(policy, "p"),
                  text(policy, "sp"), int(pct) if pct else None, source)])
        execute("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                records)
        execute("INSERT INTO dkim VALUES (?,?,?,?,?)", dkim)
        execute("INSERT INTO spf VALUES (?,?,?,?,?)", spf)
        self.reports += 1
        self.records = record_id
        self.messages += messages

    def read_file(self, path):
        with open(path, "rb") as raw:
            magic = raw.read(4)
        try:
            if magic[:2] == b"\x1f\x8b":
                with gzip.open(path, "rb") as stream:
                    self.add(path, stream)
            elif magic == b"PK\x03\x04":
                with zipfile.ZipFile(path) as archive:
                    for member in archive.infolist():
                        if not member.is_dir():
                            with archive.open(member) as stream:
                                self.add(f"{path}: {member.filename}",
                                         stream)
            else:
                with open(path, "rb") as stream:
                    self.add(path, stream)
        except (ET.ParseError, OSError, zipfile.BadZipFile, ValueError,
                TypeError, AttributeError):
            self.refused += 1

    def commit(self):
        self.connection.execute("COMMIT")
        self.connection.close()


def main():
    if len(sys.argv) != 3:
        print("usage: dmarc_import_python.py DIR DB", file=sys.stderr)
        return 2
    top, db = sys.argv[1], sys.argv[2]
    paths = []
    for where, dirs, files in os.walk(top):
        dirs.sort()
        paths += [os.path.join(where, name) for name in sorted(files)]
    store = Store(db)
    for path in paths:
        store.read_file(path)
    store.commit()
    print(json.dumps({"reports": store.reports,
                      "records": store.records,
                      "messages": store.messages,
                      "duplicates": store.duplicates,
                      "refused": store.refused}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
