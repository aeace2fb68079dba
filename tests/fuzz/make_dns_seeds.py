#!/usr/bin/python3
"""make_dns_seeds.py - writes the seed corpus of fuzz_dnsanswer (tests/fuzz/corpus/dnsanswer):
raw DNS answers in wire format as res_search returns them. Run once from the source tree; the
output is committed, so run it again only to change the seeds.

    python3 tests/fuzz/make_dns_seeds.py [OUTDIR]
"""
import os
import struct
import sys

T_A, T_NS, T_CNAME, T_SOA, T_MX, T_TXT, T_AAAA = 1, 2, 5, 6, 15, 16, 28
C_IN = 1


class Msg:
    """A DNS response being built, with name compression (suffixes already written are reused)."""

    def __init__(self, qid=0x1234, flags=0x8180):
        self.qid, self.flags = qid, flags
        self.body = bytearray()
        self.counts = [0, 0, 0, 0]
        self.offsets = {}

    def name(self, name, compress=True):
        labels = [l for l in name.split('.') if l]
        out = bytearray()
        for i in range(len(labels)):
            suffix = '.'.join(labels[i:]).lower()
            if compress and suffix in self.offsets:
                out += struct.pack('!H', 0xC000 | self.offsets[suffix])
                return bytes(out)
            where = 12 + len(self.body) + len(out)
            if compress and where < 0x4000:
                self.offsets.setdefault(suffix, where)
            out += bytes([len(labels[i])]) + labels[i].encode()
        return bytes(out + b'\0')

    def question(self, name, qtype):
        self.body += self.name(name) + struct.pack('!HH', qtype, C_IN)
        self.counts[0] += 1

    def rr(self, section, owner, rtype, rdata, ttl=300, klass=C_IN):
        self.body += self.name(owner)
        data = rdata() if callable(rdata) else rdata
        self.body += struct.pack('!HHIH', rtype, klass, ttl, len(data)) + data
        self.counts[section] += 1

    def name_rdata(self, before, name):
        """rdata for rr(): `before` bytes, then name compressed at the place it will have."""
        def rdata():
            pad = 10 + len(before)   # type, class, ttl, rdlength, then `before`
            self.body += b'\0' * pad
            n = self.name(name)
            del self.body[-pad:]
            return before + n
        return rdata

    def mx(self, section, owner, pref, host):
        self.rr(section, owner, T_MX, self.name_rdata(struct.pack('!H', pref), host))

    def cname(self, section, owner, target):
        self.rr(section, owner, T_CNAME, self.name_rdata(b'', target))

    def a(self, section, owner, dotted):
        self.rr(section, owner, T_A, bytes(int(x) for x in dotted.split('.')))

    def aaaa(self, section, owner, hexwords):
        words = hexwords.split(':')
        self.rr(section, owner, T_AAAA, b''.join(struct.pack('!H', int(w, 16)) for w in words))

    def soa(self, section, owner):
        data = self.name('ns.' + owner, compress=False) + self.name('hostmaster.' + owner, compress=False)
        self.rr(section, owner, T_SOA, data + struct.pack('!IIIII', 1, 3600, 600, 86400, 300))

    def bytes(self):
        return struct.pack('!HHHHHH', self.qid, self.flags, *self.counts) + bytes(self.body)


def seeds():
    out = {}

    m = Msg()
    m.question('example.test', T_MX)
    m.mx(1, 'example.test', 10, 'mx1.example.test')
    m.mx(1, 'example.test', 20, 'mx2.example.test')
    ns_at = 12 + len(m.body)
    m.rr(2, 'example.test', T_NS, m.name_rdata(b'', 'ns.example.test'))
    m.a(3, 'mx1.example.test', '192.0.2.10')
    m.a(3, 'mx2.example.test', '192.0.2.20')
    m.aaaa(3, 'mx2.example.test', '2001:db8:0:0:0:0:0:20')
    full = m.bytes()
    out['mx-additional'] = full
    # truncated: TC set and cut inside the additional section, then inside the answer section
    tc = bytearray(full)
    tc[2] |= 0x02
    out['mx-truncated'] = bytes(tc[:len(full) - 9])
    out['mx-truncated-answer'] = bytes(tc[:40])
    # the authority record's owner points at the header: the additional section is unreachable
    bad = bytearray(full)
    bad[ns_at:ns_at + 2] = b'\xc0\x00'
    out['ns-owner-bad-pointer'] = bytes(bad)

    m = Msg()
    m.question('Alias.TEST', T_MX)
    m.cname(1, 'alias.test', 'step.alias.test')
    m.cname(1, 'step.alias.test', 'real.example.test')
    m.mx(1, 'real.example.test', 5, 'mx.real.example.test')
    m.a(3, 'mx.real.example.test', '198.51.100.7')
    out['mx-cname-chain'] = m.bytes()

    m = Msg()
    m.question('loop.test', T_MX)
    m.cname(1, 'loop.test', 'a.loop.test')
    m.cname(1, 'a.loop.test', 'loop.test')
    m.mx(1, 'a.loop.test', 1, 'mx.loop.test')
    out['mx-cname-loop'] = m.bytes()

    m = Msg()
    m.question('mx1.example.test', T_A)
    m.cname(1, 'mx1.example.test', 'host.example.test')
    m.a(1, 'host.example.test', '192.0.2.11')
    m.a(1, 'host.example.test', '192.0.2.12')
    out['a-cname'] = m.bytes()

    m = Msg()
    m.question('mx2.example.test', T_AAAA)
    m.aaaa(1, 'mx2.example.test', '2001:db8:0:0:0:0:0:20')
    m.aaaa(1, 'mx2.example.test', '0:0:0:0:0:ffff:c000:214')   # v4-mapped
    out['aaaa'] = m.bytes()

    m = Msg()
    m.question('nullmx.test', T_MX)
    m.rr(1, 'nullmx.test', T_MX, b'\0\0\0')
    out['mx-null'] = m.bytes()

    m = Msg()
    m.question('nomx.test', T_MX)
    m.soa(2, 'nomx.test')
    out['mx-nodata-soa'] = m.bytes()

    m = Msg(flags=0x8183)
    m.question('nxdomain.test', T_MX)
    m.soa(2, 'test')
    out['nxdomain'] = m.bytes()

    m = Msg()
    m.question('txt.test', T_TXT)
    m.rr(1, 'txt.test', T_TXT, b'\x17v=STSv1; id=20240101000')
    out['txt'] = m.bytes()

    # compression pointers: to itself, two pointing at each other, forward past the end
    hdr = struct.pack('!HHHHHH', 1, 0x8180, 1, 1, 0, 0)
    q = b'\x04self\x04test\0' + struct.pack('!HH', T_MX, C_IN)
    out['ptr-self-loop'] = hdr + q + b'\xc0' + bytes([12 + len(q)]) + \
        struct.pack('!HHIH', T_MX, C_IN, 60, 4) + b'\0\x0a\xc0\x0c'
    two = 12 + len(q)
    out['ptr-mutual-loop'] = hdr + q + b'\x01x\xc0' + bytes([two + 4]) + b'\xc0' + bytes([two]) + \
        struct.pack('!HHIH', T_MX, C_IN, 60, 4) + b'\0\x0a\xc0\x0c'
    out['ptr-past-end'] = hdr + q + b'\xc0\x0c' + struct.pack('!HHIH', T_MX, C_IN, 60, 4) + \
        b'\0\x0a\xff\xf0'
    out['ptr-question-loop'] = struct.pack('!HHHHHH', 1, 0x8180, 1, 0, 0, 0) + b'\xc0\x0c' + \
        struct.pack('!HH', T_MX, C_IN)
    # an MX whose target runs past its rdlength (name fine, rdata too short)
    out['mx-rdlen-short'] = hdr + q + b'\xc0\x0c' + struct.pack('!HHIH', T_MX, C_IN, 60, 3) + \
        b'\0\x0a\x02mx\xc0\x0c'
    return out


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'corpus', 'dnsanswer')
    os.makedirs(outdir, exist_ok=True)
    for name, data in sorted(seeds().items()):
        with open(os.path.join(outdir, name), 'wb') as f:
            f.write(data)
        print(f'{name}: {len(data)} bytes')


if __name__ == '__main__':
    main()
