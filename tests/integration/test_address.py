"""Where the outside check learns the household's public address ([outside]
address_sources), through the real path: guardd on a private bus in the test's network
namespace, `guardctl --json outside --run` reading the result.

- router: Debian's miniupnpd (UPnP IGD and NAT-PMP) runs in a namespace of its own, the
  "router", joined to the test's namespace by a veth pair (the LAN, 198.18.40.0/24; the
  test's namespace has its default route via the router, where NAT-PMP is asked). The
  router's WAN is another veth pair inside the router's namespace. miniupnpd 2.3.1 refuses
  to report a private or reserved WAN address, the benchmarking range included, and has no
  option to allow one (ext_allow_private_ipv4 came in 2.3.4); so the public address it
  reports is declared with its ext_ip option as 198.20.0.7, the first address past
  198.18.0.0/15. That address is only a string in miniupnpd's answers: it is on no
  interface, and nothing is sent to it (the namespaces have no route out).
  With a WAN address in 100.64.0.0/10 (carrier-grade NAT) miniupnpd reports none; guardd
  says so and goes on to the DNS source.
- dns: dnsmasq (as in test_outside.py) answers myip.test with 198.18.0.9.
- https: a Python HTTPS server on 127.0.0.1 with a throw-away self-signed certificate
  made here with openssl, given to guardd as [outside] myip_ca_file.
Needs miniupnpd, dnsmasq-base and openssl (install/deps.sh --test)."""
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import threading
import unittest

import mgtest
from busfixture import GuarddOnBusTest
from fwtest import ip
from mgtest import DNSMASQ, start_test_dns, terminate, wait_for

CTEST_LABEL = "dbus"
mgtest.require_private_netns()

MINIUPNPD = "/usr/sbin/miniupnpd"
OPENSSL = shutil.which("openssl")
DNS_PORT = 5353
MYIP_NAME, DNS_ADDRESS = "myip.test", "198.18.0.9"
LAN_HERE, LAN_ROUTER = "198.18.40.2", "198.18.40.1"
WAN_ROUTER = "198.18.41.5"
ROUTER_REPORTS = "198.20.0.7"
CGNAT_WAN = "100.64.3.4"
HTTPS_ADDRESS = "198.18.0.44"


def natpmp_answers(host):
    """True once something answers a NAT-PMP public address request (RFC 6886 3.2)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.sendto(b"\0\0", (host, 5351))
            reply, _ = s.recvfrom(64)
        except OSError:
            return False
    return len(reply) >= 8 and reply[1] == 128


class Router:
    """miniupnpd in a named namespace: LAN veth toward the test's namespace, WAN veth pair
    inside its own. `upnp` False leaves only NAT-PMP; `ext_ip` is what it reports."""

    def __init__(self, test, directory, wan_address, ext_ip=None, upnp=True):
        self.name = f"mgaddr-router-{os.getpid()}"
        ip("netns", "add", self.name)
        test.addCleanup(ip, "netns", "del", self.name, check=False)
        ip("link", "add", "mgaddr0", "type", "veth", "peer", "name", "lan1", "netns", self.name)
        test.addCleanup(ip, "link", "del", "mgaddr0", check=False)
        ip("addr", "add", f"{LAN_HERE}/24", "dev", "mgaddr0")
        ip("link", "set", "mgaddr0", "up")
        ip("route", "add", "default", "via", LAN_ROUTER)
        for args in (("link", "set", "lo", "up"),
                     ("addr", "add", f"{LAN_ROUTER}/24", "dev", "lan1"),
                     ("link", "set", "lan1", "up"),
                     ("link", "add", "wan0", "type", "veth", "peer", "name", "wan1"),
                     ("addr", "add", f"{wan_address}/24", "dev", "wan0"),
                     ("link", "set", "wan0", "up"), ("link", "set", "wan1", "up")):
            ip("-n", self.name, *args)
        conf = os.path.join(directory, "miniupnpd.conf")
        with open(conf, "w") as f:
            f.write("ext_ifname=wan0\nlistening_ip=lan1\nhttp_port=0\n"
                    f"enable_upnp={'yes' if upnp else 'no'}\nenable_natpmp=yes\n"
                    "secure_mode=yes\nsystem_uptime=no\n"
                    "uuid=6d67a0d0-0000-4000-8000-6d6761646472\n"
                    + (f"ext_ip={ext_ip}\n" if ext_ip else ""))
        self.log = os.path.join(directory, "miniupnpd.log")
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.name, MINIUPNPD, "-d", "-f", conf,
                 "-P", os.path.join(directory, "miniupnpd.pid")],
                stdout=out, stderr=subprocess.STDOUT)
        test.addCleanup(terminate, self.proc)
        wait_for(lambda: natpmp_answers(LAN_ROUTER) or self.proc.poll() is not None, 10,
                 "miniupnpd to answer NAT-PMP")
        if self.proc.poll() is not None:
            with open(self.log) as f:
                raise AssertionError(f"miniupnpd exited:\n{f.read()}")


class HttpsServer:
    """An HTTPS server on 127.0.0.1 (a thread of the test) that answers every GET with
    `body`; its certificate, for 127.0.0.1, is self-signed and made for this test."""

    def __init__(self, test, directory, body):
        self.cert = os.path.join(directory, "myip-cert.pem")
        key = os.path.join(directory, "myip-key.pem")
        subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                        "-subj", "/CN=myip.test", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", self.cert],
                       check=True, capture_output=True)
        self.body = body
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                payload = server.body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/ip"
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()

        def stop():
            self.httpd.shutdown()
            thread.join(10)
            self.httpd.server_close()
        test.addCleanup(stop)


@unittest.skipUnless(os.path.exists(DNSMASQ), "dnsmasq is not installed (install/deps.sh --test)")
class PublicAddressSources(GuarddOnBusTest):
    def setUp(self):
        super().setUp()
        start_test_dns(self, DNS_PORT, [f"--host-record={MYIP_NAME},{DNS_ADDRESS}"], "myip.test", 1)

    def configure(self, sources, url="", ca_file=""):
        path = os.path.join(self.dir, "guardd.conf")
        quoted = ", ".join(f'"{s}"' for s in sources)
        with open(path, "w") as f:
            f.write(f"[outside]\naddress_sources = [{quoted}]\nblocklists = []\n"
                    f'myip_name = "{MYIP_NAME}"\nmyip_resolver = "127.0.0.1:{DNS_PORT}"\n'
                    f'nameserver = "127.0.0.1:{DNS_PORT}"\ntimeout_seconds = 1\n'
                    + (f'myip_url = "{url}"\n' if url else "")
                    + (f'myip_ca_file = "{ca_file}"\n' if ca_file else ""))
        self.guardd.config = path

    def run_check(self):
        report = self.ctl_json("outside", "--run")
        self.assertIn("address_notes", report)
        self.assertIn("address_shared", report)
        return report

    def need(self, path, why):
        if not path or not os.path.exists(path):
            self.skipTest(f"{why} is not installed (install/deps.sh --test)")

    def test_the_router_reports_the_address_over_upnp(self):
        self.need(MINIUPNPD, "miniupnpd")
        Router(self, self.dir, WAN_ROUTER, ext_ip=ROUTER_REPORTS)
        self.configure(["router", "dns"])
        self.start_guardd()
        report = self.run_check()
        self.assertEqual(report["public_address"], ROUTER_REPORTS, report)
        self.assertEqual(report["address_source"], "router:upnp")
        self.assertEqual(report["address_notes"], [])
        self.assertEqual(report["address_error"], "")
        text = self.ctl("outside").stdout
        self.assertIn(f"Public address {ROUTER_REPORTS} (from router:upnp)", text)

    def test_without_upnp_the_router_is_asked_over_natpmp(self):
        self.need(MINIUPNPD, "miniupnpd")
        Router(self, self.dir, WAN_ROUTER, ext_ip=ROUTER_REPORTS, upnp=False)
        self.configure(["router", "dns"])
        self.start_guardd()
        report = self.run_check()
        self.assertEqual(report["public_address"], ROUTER_REPORTS, report)
        self.assertEqual(report["address_source"], "router:natpmp")
        self.assertEqual(len(report["address_notes"]), 1, report["address_notes"])
        self.assertTrue(report["address_notes"][0].startswith("router:upnp: no UPnP router"),
                        report["address_notes"])

    def test_with_the_host_firewall_on_the_router_still_gives_the_address(self):
        # The multicast search's answers come from the router, not from the group asked,
        # so conntrack sees them as new inbound packets, which host_in drops; the search
        # sent to the default gateway itself is answered from the address asked: a reply.
        self.need(MINIUPNPD, "miniupnpd")
        Router(self, self.dir, WAN_ROUTER, ext_ip=ROUTER_REPORTS)
        self.configure(["router", "dns"])
        self.start_guardd()
        self.assertTrue(self.ctl_json("firewall", "enable", "--yes")["enabled"])
        report = self.run_check()
        self.assertEqual(report["public_address"], ROUTER_REPORTS, report)
        self.assertEqual(report["address_source"], "router:upnp", report)
        self.assertEqual(report["address_notes"], [])

    def test_a_router_behind_carrier_grade_nat_says_so_and_dns_gives_the_address(self):
        self.need(MINIUPNPD, "miniupnpd")
        Router(self, self.dir, CGNAT_WAN)
        self.configure(["router", "dns"])
        self.start_guardd()
        report = self.run_check()
        self.assertEqual(report["public_address"], DNS_ADDRESS, report)
        self.assertEqual(report["address_source"], f"dns:{MYIP_NAME}")
        notes = report["address_notes"]
        self.assertEqual([n.split(":")[0] + ":" + n.split(":")[1] for n in notes],
                         ["router:upnp", "router:natpmp"], notes)
        for note in notes:
            self.assertIn("carrier-grade NAT", note)
        text = self.ctl("outside").stdout
        self.assertIn("carrier-grade NAT", text)

    def test_an_https_service_gives_the_address(self):
        self.need(OPENSSL, "openssl")
        server = HttpsServer(self, self.dir, HTTPS_ADDRESS + "\n")
        self.configure(["https", "router", "dns"], server.url, server.cert)
        self.start_guardd()
        report = self.run_check()
        self.assertEqual(report["public_address"], HTTPS_ADDRESS, report)
        self.assertEqual(report["address_source"], f"https:{server.url}")
        self.assertEqual(report["address_notes"], [])

    def test_a_bad_https_body_is_an_error_and_the_next_source_is_asked(self):
        self.need(OPENSSL, "openssl")
        server = HttpsServer(self, self.dir, "<html>198.18.0.44</html>")
        self.configure(["https", "dns"], server.url, server.cert)
        self.start_guardd()
        report = self.run_check()
        self.assertEqual(report["public_address"], DNS_ADDRESS, report)
        self.assertEqual(report["address_source"], f"dns:{MYIP_NAME}")
        self.assertEqual(report["address_notes"],
                         [f'https:{server.url}: the answer "<html>198.18.0.44</html>" is not '
                          "one IPv4 address"])

        # Alone it gives no address at all, and says why.
        self.configure(["https"], server.url, server.cert)
        self.daemon.restart()
        report = self.run_check()
        self.assertEqual(report["public_address"], "")
        self.assertIn("is not one IPv4 address", report["address_error"])
        self.assertIn("public_address", report["address_error"])

    def test_an_https_service_whose_certificate_is_not_trusted_gives_nothing(self):
        self.need(OPENSSL, "openssl")
        server = HttpsServer(self, self.dir, HTTPS_ADDRESS)
        self.configure(["https", "dns"], server.url)
        self.start_guardd()
        report = self.run_check()
        self.assertEqual(report["address_source"], f"dns:{MYIP_NAME}", report)
        self.assertEqual(len(report["address_notes"]), 1, report["address_notes"])
        self.assertIn("certificate", report["address_notes"][0])


if __name__ == "__main__":
    unittest.main()
