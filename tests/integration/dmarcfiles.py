"""Python's own reading of DMARC aggregate report files, for the tests.

What sealpost reads in a report file is checked against what Python's
standard library reads in it, independently of sealpost.  This module
owns that reading:

- the layers: a gzip (every member), a zip (every member) or a report
  mail (every leaf MIME part that is a gzip, a zip or XML), told apart by
  their leading bytes as sealpost tells them apart, down to the payloads;
- the lenient repair of markup that a broken report needs before an XML
  parser takes it;
- the report XML: element names without their namespace, the stripped
  text of an element, an IP address in one spelling.

How a test turns the XML into the values it compares is the test's own.
"""
import email
import email.policy
import io
import ipaddress
import re
import zipfile
import zlib

GZIP = b"\x1f\x8b"
ZIP = b"PK\x03\x04"

# A '<' that starts a tag, a comment, a declaration or a processing
# instruction.
MARKUP = re.compile(rb"<(?:/?[A-Za-z_][\w.:-]*(?:\s[^<>]*)?/?>|[!?])")


# ---------------------------------------------------------------------------
# The layers


def gunzip(data):
    """Every gzip member in data; bytes after the last member (mail
    gateways append a line end) are ignored, a stream cut short is not."""
    out = []
    while data[:2] == GZIP:
        stream = zlib.decompressobj(31)
        out.append(stream.decompress(data))
        if not stream.eof:
            raise ValueError("gzip stream cut short")
        data = stream.unused_data
    return b"".join(out)


def is_xml(data):
    """Whether data is XML: '<' first, after a BOM and blanks."""
    return data.lstrip(b"\xef\xbb\xbf").lstrip()[:1] == b"<"


def payloads(data, part="", top=True):
    """[(part, bytes)] of every payload in data, told apart by leading
    bytes like sealpost does; a zip member's part is its name, after the
    attachment's name and a slash when the zip came in a mail.  The bytes
    are None when they cannot be unpacked."""
    if data[:2] == GZIP:
        try:
            return [(part, gunzip(data))]
        except (ValueError, zlib.error):
            return [(part, None)]
    if data[:4] == ZIP:
        found = []
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    member = f"{part}/{info.filename}" if part \
                        else info.filename
                    found += payloads(archive.read(info), member, top=False)
        return found
    if is_xml(data) or not top:
        return [(part, data)]
    found = []
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    for mime_part in message.walk():
        if mime_part.is_multipart():
            continue
        body = mime_part.get_payload(decode=True) or b""
        if body[:2] == GZIP or body[:4] == ZIP or is_xml(body):
            found += payloads(body, mime_part.get_filename() or "",
                              top=False)
    return found


# ---------------------------------------------------------------------------
# The markup


def repair_markup(data):
    """Escape every '<' that does not start a tag, comment, declaration or
    processing instruction, and every '&' that does not start a
    reference, as a lenient reader of broken reports must."""
    data = re.sub(rb"&(?!#?\w+;)", b"&amp;", data)
    out = bytearray()
    for index in range(len(data)):
        if data[index:index + 1] == b"<" and not MARKUP.match(data, index):
            out += b"&lt;"
        else:
            out += data[index:index + 1]
    return bytes(out)


# ---------------------------------------------------------------------------
# The report XML


def local(tag):
    """An element's name without its namespace."""
    return tag.rsplit("}", 1)[-1]


def text(element, path):
    """The stripped text at path; None when absent or empty."""
    found = element.find(path)
    if found is None or found.text is None or not found.text.strip():
        return None
    return found.text.strip()


def address(value):
    """An IP address in one spelling, so that sealpost may write IPv6
    addresses in their canonical form."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value
