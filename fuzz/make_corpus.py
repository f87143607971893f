#!/usr/bin/env python3
"""Writes the fuzz seed corpus: python3 fuzz/make_corpus.py CORPUS_DIR [DEMO_DIR]

Media as phones write them (the same shapes as testkit/src/media.rs: a movie with ©xyz, ©aut,
an iTunes ilst and a QuickTime keys/ilst; a photo with EXIF GPS in both byte orders, XMP,
IPTC, a comment, an appended movie and an appended MPF image), GPX and GeoJSON tracks, and,
given the folder `fieldcap demo --dir DEMO_DIR` made, its packages (folder records as in
fuzz/src/lib.rs `files`, and ZIPs with stored entries), exported clip, manifests, custody lines
and checkpoints. Files over 256 KiB (the demo's media) are left out to keep the corpus small."""
import os, struct, sys, zipfile, io, random

corpus = sys.argv[1]
demo = sys.argv[2] if len(sys.argv) > 2 else None

def put(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def seeded(n, seed):
    r = random.Random(seed)
    return bytes(r.getrandbits(8) for _ in range(n))

# --- ISO-BMFF -------------------------------------------------------------------------------
def bx(t, p): return struct.pack(">I", len(p) + 8) + t + p
def full(t, p): return bx(t, b"\0\0\0\0" + p)
def large(t, p): return struct.pack(">I", 1) + t + struct.pack(">Q", len(p) + 16) + p
def qt_text(t, s): return bx(t, struct.pack(">HH", len(s), 0x15c7) + s)
def data_box(s): return bx(b"data", struct.pack(">I", 1) + b"\0" * 4 + s)
def hdlr(h): return full(b"hdlr", b"\0" * 4 + h + b"\0" * 12 + b"Handler\0")
def keys(names):
    p = struct.pack(">I", len(names))
    for n in names: p += struct.pack(">I", len(n) + 8) + b"mdta" + n
    return full(b"keys", p)
def trak(h, extra=b""):
    mdia = bx(b"mdia", full(b"mdhd", b"\0" * 20) + hdlr(h) + bx(b"minf", b"\0" * 16))
    return bx(b"trak", full(b"tkhd", b"\0" * 80) + mdia + extra)
PLACE, PLACE6709, OWNER = b"+33.7406-118.2760/", b"+33.7406-118.2760+012.000/", b"Jane Doe"
def movie(mdat, quicktime, large_mdat):
    ftyp = bx(b"ftyp", b"isom\0\0\x02\0isommp41")
    m = large(b"mdat", mdat) if large_mdat else bx(b"mdat", mdat)
    ilst = bx(b"ilst", bx(b"\xa9xyz", data_box(PLACE6709)) + bx(b"\xa9too", data_box(b"Lavf60")))
    udta = bx(b"udta", qt_text(b"\xa9xyz", PLACE) + qt_text(b"\xa9mak", b"Google") + qt_text(b"\xa9aut", OWNER)
              + bx(b"meta", b"\0" * 4 + hdlr(b"mdir") + ilst) + b"\0" * 4)
    meta = b""
    if quicktime:
        names = [b"com.apple.quicktime.location.ISO6709", b"com.apple.quicktime.make", b"com.apple.quicktime.author", b"com.apple.quicktime.model"]
        vals = [PLACE6709, b"Apple", OWNER, b"iPhone 15"]
        items = b"".join(bx(struct.pack(">I", i + 1), data_box(v)) for i, v in enumerate(vals))
        meta = bx(b"meta", hdlr(b"mdta") + keys(names) + bx(b"ilst", items))
    video = trak(b"vide", bx(b"udta", qt_text(b"\xa9xyz", PLACE)))
    moov = bx(b"moov", full(b"mvhd", b"\0" * 96) + video + trak(b"soun") + udta + meta
              + bx(b"uuid", bytes([0xBE, 0x7A, 0xCF, 0xCB, 0x97, 0xA9, 0x42, 0xE8, 0x9C, 0x71, 0x99, 0x94, 0x91, 0xE3, 0xAF, 0xAC]) + b"<x:xmpmeta/>")
              + bx(b"free", b"stale " + PLACE))
    return ftyp + m + moov

# --- JPEG / EXIF ----------------------------------------------------------------------------
def tiff(little):
    e = "<" if little else ">"
    buf = bytearray((b"II" if little else b"MM") + struct.pack(e + "HI", 42, 8))
    def ifd(entries):
        start = len(buf); data_at = start + 2 + 12 * len(entries) + 4; fields = []; tail = b""
        buf.extend(struct.pack(e + "H", len(entries)))
        for tag, typ, count, val in entries:
            buf.extend(struct.pack(e + "HHI", tag, typ, count)); fields.append(len(buf))
            if len(val) <= 4: buf.extend(val.ljust(4, b"\0"))
            else: buf.extend(struct.pack(e + "I", data_at)); tail += val; data_at += len(val)
        buf.extend(b"\0" * 4); buf.extend(tail)
        return start, fields
    rat = lambda v: b"".join(struct.pack(e + "II", a, b) for a, b in v)
    _, f0 = ifd([(0x010F, 2, 6, b"Pixel\0"), (0x013B, 2, 9, OWNER + b"\0"), (0x8769, 4, 1, b"\0" * 4), (0x8825, 4, 1, b"\0" * 4)])
    ex, _ = ifd([(0xA431, 2, 12, b"SN123456789\0"), (0xA430, 2, 5, b"Jane\0"), (0x9003, 2, 20, b"2025:01:01 10:00:00\0")])
    gps, _ = ifd([(0, 1, 4, b"\2\3\0\0"), (1, 2, 2, b"N\0"), (2, 5, 3, rat([(33, 1), (44, 1), (2616, 100)])), (3, 2, 2, b"W\0"),
                  (4, 5, 3, rat([(118, 1), (16, 1), (3360, 100)])), (6, 5, 1, rat([(12, 1)]))])
    buf[f0[2]:f0[2] + 4] = struct.pack(e + "I", ex); buf[f0[3]:f0[3] + 4] = struct.pack(e + "I", gps)
    return b"Exif\0\0" + bytes(buf)
def seg(code, p): return bytes([0xFF, code]) + struct.pack(">H", len(p) + 2) + p
def scan(n, s):
    v = bytearray(b if b != 0xFF else 0xFE for b in seeded(n, s))
    v[2 * n // 3:2 * n // 3] = b"\xff\xff\xd1"; v[n // 3:n // 3] = b"\xff\xd0"; v[n // 30:n // 30] = b"\xff\x00"
    return bytes(v)
def photo(little, sc):
    return b"".join([b"\xff\xd8", seg(0xE0, b"JFIF\0\x01\x02\0\0\x01\0\x01\0\0"), seg(0xE1, tiff(little)),
        seg(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>GPSLatitude 33,44.436N " + OWNER + b"</x:xmpmeta>"),
        seg(0xED, b"Photoshop 3.0\x008BIM\x04\x04 By-line: " + OWNER), seg(0xFE, b"taken at 33.7406 -118.2760"),
        seg(0xDB, b"\0" * 65), seg(0xC0, bytes([8, 0, 16, 0, 16, 1, 1, 0x11, 0])), seg(0xC4, b"\0" * 20),
        seg(0xDA, bytes([1, 1, 0, 0, 63, 0])), sc, b"\xff\xd9"])

mdat, sc = seeded(600, 1), scan(300, 2)
put("scrub", "movie-mp4", b"\x01" + movie(mdat, False, False))
put("scrub", "movie-qt-large", b"\x02" + movie(mdat, True, True))
put("scrub", "photo-le", b"\x00" + photo(True, sc))
put("scrub", "photo-be", b"\x00" + photo(False, sc))
put("scrub", "motion-photo", b"\x00" + photo(True, sc) + movie(mdat, False, False))
put("scrub", "mpf-photo", b"\x00" + photo(False, sc) + b"\xff\xd8" + seg(0xE1, tiff(True)) + b"\xff\xd9")
for i in range(4):
    put("scrub_structured", "seed-%d" % i, seeded(512, 100 + i))
    put("tlog_proofs", "seed-%d" % i, seeded(200 * (i + 1), 7 + i))
for i in range(3):
    put("signed_request", "seed-%d" % i, seeded(200, 20 + i))
    put("tus_headers", "seed-%d" % i, seeded(120, 30 + i))
# Readable headers too: the structured inputs take byte slices, so plain text helps.
put("tus_headers", "text", b"\x04" + b"0" * 3 + b"1048576\x07application/offset+octet-stream\x05fieldcap-upload OWYwMTIz")
put("signed_request", "text", b"POST\x0e/v1/manifests\x20" + b"0123456789abcdef0123456789abcdef" + b"\x00" * 8)

pts = [("2025-01-01T10:00:%02dZ" % (5 * i), 33.74 + i * 1e-4, -118.27 - i * 2e-4) for i in range(3)]
gpx = ('<?xml version="1.0" encoding="UTF-8"?><gpx version="1.1" creator="fieldcap" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
       + "".join('<trkpt lat="%f" lon="%f"><ele>12.0</ele><time>%s</time><hdop>1.0</hdop></trkpt>' % (la, lo, t) for t, la, lo in pts)
       + "</trkseg></trk></gpx>")
geo = ('{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"LineString","coordinates":['
       + ",".join("[%f,%f,12.0]" % (lo, la) for t, la, lo in pts) + ']},"properties":{"coordTimes":['
       + ",".join('"%s"' % t for t, _, _ in pts) + "]}}]}")
put("track", "gpx", b"\x00" + gpx.encode())
put("track", "geojson", b"\x01" + geo.encode())

# A checkpoint signed by the tlog_note target's key (Ed25519 seed 32 x 0x07, name fuzz.example/log).
try:
    import base64, hashlib
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization
    def leaf(b): return hashlib.sha256(b"\0" + b).digest()
    def node(l, r): return hashlib.sha256(b"\1" + l + r).digest()
    def mth(hs):
        if len(hs) == 1: return hs[0]
        k = 1
        while k * 2 < len(hs): k *= 2
        return node(mth(hs[:k]), mth(hs[k:]))
    root = mth([leaf(struct.pack(">Q", k)) for k in range(5)])
    body = "fuzz.example/log\n5\n%s\n" % base64.b64encode(root).decode()
    key = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = hashlib.sha256(b"fuzz.example/log\n\x01" + pub).digest()[:4]
    sig = base64.b64encode(kid + key.sign(body.encode())).decode()
    put("tlog_note", "checkpoint-fixed-key", ("%s\n\u2014 fuzz.example/log %s\n" % (body, sig)).encode())
    # The witness target: that checkpoint cosigned by its fixed witness (seed 32 x 0x09,
    # tlog-cosignature/v1), add-checkpoint bodies, verifier keys, size answers.
    note = "%s\n\u2014 fuzz.example/log %s\n" % (body, sig)
    wkey = Ed25519PrivateKey.from_private_bytes(b"\x09" * 32)
    wpub = wkey.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    wname = "fuzz.example/witness"
    wkid = hashlib.sha256(wname.encode() + b"\n\x04" + wpub).digest()[:4]
    ts = 1764547200
    cosig = wkid + struct.pack(">Q", ts) + wkey.sign(("cosignature/v1\ntime %d\n" % ts).encode() + body.encode())
    line = "\u2014 %s %s\n" % (wname, base64.b64encode(cosig).decode())
    put("witness", "cosigned-checkpoint", (note + line).encode())
    put("witness", "answer", (body + "\n" + line).encode())
    put("witness", "add-checkpoint-first", ("old 0\n\n" + note).encode())
    proof = [base64.b64encode(leaf(struct.pack(">Q", k))).decode() for k in range(3)]
    put("witness", "add-checkpoint-proof", ("old 3\n" + "\n".join(proof) + "\n\n" + note + line).encode())
    put("witness", "vkey-witness", ("%s+%s+%s" % (wname, wkid.hex(), base64.b64encode(b"\x04" + wpub).decode())).encode())
    put("witness", "vkey-log", ("fuzz.example/log+%s+%s" % (kid.hex(), base64.b64encode(b"\x01" + pub).decode())).encode())
    put("witness", "size", b"5\n")
except ImportError:
    pass

def encode(files):
    out = b""
    for name, body in files:
        n = name.encode()
        out += bytes([len(n)]) + n + struct.pack("<I", len(body)) + body
    return out
def read_tree(root):
    files = []
    for d, _, fs in sorted(os.walk(root)):
        for f in sorted(fs):
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root)
            if os.path.getsize(p) <= 256 * 1024 and len(rel.encode()) < 256:
                files.append((rel, open(p, "rb").read()))
    return files

if demo:
    pkgs = sorted(os.path.join(demo, d) for d in os.listdir(demo) if os.path.isfile(os.path.join(demo, d, "package.json")))
    for i, p in enumerate(pkgs):
        files = read_tree(p)
        put("package_dir", "package-%d" % i, b"\x00" + encode(files))
        z = io.BytesIO()
        with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
            for name, body in files: zf.writestr(name, body)
        put("package_zip", "package-%d.zip" % i, z.getvalue())
        for name, body in files:
            flat = "p%d-%s" % (i, name.replace("/", "_"))
            if name.endswith("manifest.json") and len(os.listdir(os.path.join(corpus, "canonical_manifest")) if os.path.isdir(os.path.join(corpus, "canonical_manifest")) else []) < 8:
                put("canonical_manifest", flat, body)
            if name.endswith(".jsonl"):
                put("custody_line", flat, body[:64 * 1024])
            if name.endswith("checkpoint.txt"):
                put("tlog_note", flat, body)
    exp = os.path.join(demo, "export")
    if os.path.isdir(exp):
        for i, c in enumerate(sorted(os.listdir(exp))[:2]):
            put("package_dir", "clip-%d" % i, b"\x01" + encode(read_tree(os.path.join(exp, c))))
