#include "mailguard/dbus/codec.hpp"

#include <gtest/gtest.h>

namespace mailguard::dbus {
namespace {

// Every field gets a distinct, non-default value, so a swapped or dropped field shows.
Program aProgram() {
  return Program{7,    "/usr/bin/msmtp", "ab12", "/home/u/send.py",     "cd34",
                 1000, "approved",       42,     1'700'000'000'000'001, 1'600'000'000'000'002,
                 20,   "script",         "alice"};
}

TEST(WireCodec, ProgramRoundTripsEveryField) {
  const auto p = aProgram();
  const auto back = codec::decode(codec::encode(p));
  EXPECT_EQ(back.id, p.id);
  EXPECT_EQ(back.path, p.path);
  EXPECT_EQ(back.sha256, p.sha256);
  EXPECT_EQ(back.scriptPath, p.scriptPath);
  EXPECT_EQ(back.scriptSha256, p.scriptSha256);
  EXPECT_EQ(back.uid, p.uid);
  EXPECT_EQ(back.state, p.state);
  EXPECT_EQ(back.attempts, p.attempts);
  EXPECT_EQ(back.lastAttemptUs, p.lastAttemptUs);
  EXPECT_EQ(back.firstSeenUs, p.firstSeenUs);
  EXPECT_EQ(back.heldMessages, p.heldMessages);
  EXPECT_EQ(back.kind, p.kind);
  EXPECT_EQ(back.covers, p.covers);
}

TEST(WireCodec, ProgramIsEncodedInTheOrderOfTheXml) {
  const auto w = codec::encode(aProgram());  // (xssssusxxxuss)
  EXPECT_EQ(w.get<0>(), 7);
  EXPECT_EQ(w.get<1>(), "/usr/bin/msmtp");
  EXPECT_EQ(w.get<6>(), "approved");
  EXPECT_EQ(w.get<9>(), 1'600'000'000'000'002);
  EXPECT_EQ(w.get<10>(), 20U);
  EXPECT_EQ(w.get<11>(), "script");
  EXPECT_EQ(w.get<12>(), "alice");
}

TEST(WireCodec, RuleRoundTripsEveryFieldInTheOrderOfTheXml) {
  const Rule r{4,
               "approve",
               "/usr/bin/perl",
               "ab12",
               "/srv/news.pl",
               "cd34",
               {"192.0.2.7:587", "[2001:db8::7]:25"},
               {"PERL5LIB", "-M"},
               "script",
               "alice"};
  const auto w = codec::encode(r);  // (xsssssasasss)
  EXPECT_EQ(w.get<6>(), r.onlyTo);
  EXPECT_EQ(w.get<7>(), r.allowEnv);
  EXPECT_EQ(w.get<8>(), "script");
  EXPECT_EQ(w.get<9>(), "alice");
  const auto b = codec::decode(w);
  EXPECT_EQ(b.id, r.id);
  EXPECT_EQ(b.action, r.action);
  EXPECT_EQ(b.path, r.path);
  EXPECT_EQ(b.sha256, r.sha256);
  EXPECT_EQ(b.scriptPath, r.scriptPath);
  EXPECT_EQ(b.scriptSha256, r.scriptSha256);
  EXPECT_EQ(b.onlyTo, r.onlyTo);
  EXPECT_EQ(b.allowEnv, r.allowEnv);
  EXPECT_EQ(b.kind, r.kind);
  EXPECT_EQ(b.covers, r.covers);
}

TEST(WireCodec, AttemptRoundTripsEveryField) {
  const Attempt a{3,
                  1'700'000'000'000'000,
                  4242,
                  1000,
                  "/usr/bin/bot",
                  "/tmp/x.py",
                  "bot --spam",
                  "127.0.0.1",
                  40000,
                  "192.0.2.1",
                  25,
                  "hold",
                  "unknown program",
                  9,
                  "another user's",
                  "mta",
                  "1rXyZa-000Abc-7Q"};
  const auto b = codec::decode(codec::encode(a));
  EXPECT_EQ(b.id, a.id);
  EXPECT_EQ(b.timeUs, a.timeUs);
  EXPECT_EQ(b.pid, a.pid);
  EXPECT_EQ(b.uid, a.uid);
  EXPECT_EQ(b.path, a.path);
  EXPECT_EQ(b.scriptPath, a.scriptPath);
  EXPECT_EQ(b.cmdline, a.cmdline);
  EXPECT_EQ(b.src, a.src);
  EXPECT_EQ(b.srcPort, a.srcPort);
  EXPECT_EQ(b.dst, a.dst);
  EXPECT_EQ(b.dstPort, a.dstPort);
  EXPECT_EQ(b.verdict, a.verdict);
  EXPECT_EQ(b.reason, a.reason);
  EXPECT_EQ(b.programId, a.programId);
  EXPECT_EQ(b.cmdlineHidden, a.cmdlineHidden);
  EXPECT_EQ(b.channel, a.channel);
  EXPECT_EQ(b.queueId, a.queueId);
  const auto w = codec::encode(a);  // (xxiussssqsqssxsss): appended at the end
  EXPECT_EQ(w.get<15>(), "mta");
  EXPECT_EQ(w.get<16>(), "1rXyZa-000Abc-7Q");
}

TEST(WireCodec, AlertRoundTripsAndTakesItsKindFromTheEvidence) {
  Alert a;
  a.id = 5;
  a.timeUs = 11;
  a.programId = 6;
  a.path = "/usr/bin/bot";
  a.uid = 1001;
  a.tier = "hard";
  a.summary = "quarantined";
  a.reasons = {"burst", "many relays"};
  a.acknowledged = true;
  a.evidence = R"({"kind":"audit","port":25})";
  const auto b = codec::decode(codec::encode(a));
  EXPECT_EQ(b.id, a.id);
  EXPECT_EQ(b.timeUs, a.timeUs);
  EXPECT_EQ(b.programId, a.programId);
  EXPECT_EQ(b.path, a.path);
  EXPECT_EQ(b.uid, a.uid);
  EXPECT_EQ(b.tier, a.tier);
  EXPECT_EQ(b.summary, a.summary);
  EXPECT_EQ(b.reasons, a.reasons);
  EXPECT_EQ(b.acknowledged, a.acknowledged);
  EXPECT_EQ(b.evidence, a.evidence);
  EXPECT_EQ(b.kind, "audit");

  a.evidence = R"({"score":3})";
  EXPECT_EQ(codec::decode(codec::encode(a)).kind, "detector");
}

TEST(WireCodec, StatusRoundTripsEveryKey) {
  const Status s{
      true,     "xt-compat",  "0.1.0", 1, 2,        3,     4,  5,        6,  7,  "disk full",
      "kernel", "tracepoint", 8,       9, "logind", 1000U, 42, "kernel", 10, 11, 12,
      13};
  const auto b = codec::decodeStatus(codec::encodeStatus(s));
  EXPECT_EQ(b.enforcing, s.enforcing);
  EXPECT_EQ(b.backend, s.backend);
  EXPECT_EQ(b.version, s.version);
  EXPECT_EQ(b.allowed, s.allowed);
  EXPECT_EQ(b.held, s.held);
  EXPECT_EQ(b.rejected, s.rejected);
  EXPECT_EQ(b.queueDropped, s.queueDropped);
  EXPECT_EQ(b.attemptsDropped, s.attemptsDropped);
  EXPECT_EQ(b.storeErrors, s.storeErrors);
  EXPECT_EQ(b.tableRestores, s.tableRestores);
  EXPECT_EQ(b.storeError, s.storeError);
  EXPECT_EQ(b.attribution, "kernel");
  EXPECT_EQ(b.kernelHooks, "tracepoint");
  EXPECT_EQ(b.kernelEventsLost, 8U);
  EXPECT_EQ(b.kernelMapBytes, 9U);
  EXPECT_EQ(b.presenceSource, "logind");
  EXPECT_EQ(b.presenceActiveUser, 1000U);
  EXPECT_EQ(b.presenceIdleSeconds, 42);
  EXPECT_EQ(b.dnsSource, "kernel");
  EXPECT_EQ(b.dnsQueries, 10U);
  EXPECT_EQ(b.dnsLost, 11U);
  EXPECT_EQ(b.replySessions, 12U);
  EXPECT_EQ(b.repliesLost, 13U);
}

TEST(WireCodec, StatusCarriesTheAttributionAsAString) {
  Status s;
  s.attribution = "proc";
  const auto m = codec::encodeStatus(s);
  ASSERT_EQ(m.count("attribution"), 1U);
  EXPECT_EQ(m.at("attribution").get<std::string>(), "proc");
}

TEST(WireCodec, StatusFromAnOlderGuarddDecodesMissingOrMistypedKeysToDefaults) {
  codec::VariantMap m{{"enforcing", sdbus::Variant(true)},
                      {"allowed", sdbus::Variant(std::string("not a number"))}};
  const auto s = codec::decodeStatus(m);
  EXPECT_TRUE(s.enforcing);
  EXPECT_EQ(s.allowed, 0U);
  EXPECT_EQ(s.backend, "");
  EXPECT_EQ(s.attribution, "") << "an older guardd does not say";
}

TEST(WireCodec, StatusCarriesPresenceAndLeavesOutWhatIsUnknown) {
  Status s;
  s.presenceSource = "logind+input";
  s.presenceActiveUser = 1000;
  s.presenceIdleSeconds = 42;
  const auto b = codec::decodeStatus(codec::encodeStatus(s));
  EXPECT_EQ(b.presenceSource, "logind+input");
  EXPECT_EQ(b.presenceActiveUser, 1000U);
  EXPECT_EQ(b.presenceIdleSeconds, 42);

  Status none;
  none.presenceSource = "none";
  const auto m = codec::encodeStatus(none);
  EXPECT_EQ(m.count("presence_active_user"), 0U);
  EXPECT_EQ(m.count("presence_idle_s"), 0U);
  const auto c = codec::decodeStatus(m);
  EXPECT_EQ(c.presenceSource, "none");
  EXPECT_FALSE(c.presenceActiveUser.has_value());
  EXPECT_FALSE(c.presenceIdleSeconds.has_value());
}

TEST(WireCodec, FirewallStatusRoundTripsEveryKey) {
  FirewallStatus s;
  s.enabled = true;
  s.services = {{"ssh", true, {"22/tcp"}}, {"8080/tcp", false, {"8080/tcp", "8080/udp"}}};
  s.localSubnets = {"192.168.1.0/24", "fd00::/8"};
  s.allowPing = false;
  s.probeReader = true;
  s.probeError = "none";
  s.probeEvents = 17;
  s.probesDropped = 2;
  const auto b = codec::decodeFirewall(codec::encodeFirewall(s));
  EXPECT_EQ(b.enabled, s.enabled);
  ASSERT_EQ(b.services.size(), 2U);
  EXPECT_EQ(b.services[0].name, "ssh");
  EXPECT_TRUE(b.services[0].localOnly);
  EXPECT_EQ(b.services[1].ports, s.services[1].ports);
  EXPECT_EQ(b.localSubnets, s.localSubnets);
  EXPECT_EQ(b.allowPing, s.allowPing);
  EXPECT_EQ(b.probeReader, s.probeReader);
  EXPECT_EQ(b.probeError, s.probeError);
  EXPECT_EQ(b.probeEvents, s.probeEvents);
  EXPECT_EQ(b.probesDropped, s.probesDropped);
}

TEST(WireCodec, EnableResultRoundTrips) {
  const EnableResult r{false, true, "you are on SSH"};
  const auto b = codec::decode(codec::encode(r));
  EXPECT_EQ(b.enabled, r.enabled);
  EXPECT_EQ(b.needsConfirmation, r.needsConfirmation);
  EXPECT_EQ(b.warning, r.warning);
}

TEST(WireCodec, ProbeRoundTrips) {
  const Probe p{"203.0.113.9", 23, 99, 100, 200};
  const auto b = codec::decode(codec::encode(p));
  EXPECT_EQ(b.source, p.source);
  EXPECT_EQ(b.port, p.port);
  EXPECT_EQ(b.count, p.count);
  EXPECT_EQ(b.firstUs, p.firstUs);
  EXPECT_EQ(b.lastUs, p.lastUs);
}

TEST(WireCodec, AuditResultCarriesTheLanVantagesAndAuthInFieldsOfTheirOwn) {
  AuditReport r;
  AuditResult a;
  a.transcript = {"< 220 pc.test ESMTP", "> QUIT"};
  a.lan = {{"198.18.4.0/24",
            "198.18.4.3",
            "198.18.4.1",
            "open",
            {"plain", "null-sender"},
            "reached from 198.18.4.3 (a host on your LAN 198.18.4.0/24) at 198.18.4.1",
            {"< 220 pc.test ESMTP", "> RCPT TO:<relay-test@example.net>", "< 250 2.1.5 Ok"}},
           {"198.19.0.0/16", "198.19.0.9", "198.19.0.1", "unreachable", {}, "timed out", {}}};
  a.authInClear = {"PLAIN", "LOGIN"};
  r.results = {a};
  const auto x = codec::decode(codec::encode(r)).results.at(0);
  EXPECT_EQ(x.transcript, a.transcript) << "the stranger's dialogue only";
  ASSERT_EQ(x.lan.size(), 2U);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(x.lan[i].subnet, a.lan[i].subnet);
    EXPECT_EQ(x.lan[i].probeAddress, a.lan[i].probeAddress);
    EXPECT_EQ(x.lan[i].target, a.lan[i].target);
    EXPECT_EQ(x.lan[i].relay, a.lan[i].relay);
    EXPECT_EQ(x.lan[i].accepted, a.lan[i].accepted);
    EXPECT_EQ(x.lan[i].reason, a.lan[i].reason);
    EXPECT_EQ(x.lan[i].transcript, a.lan[i].transcript);
  }
  EXPECT_EQ(x.authInClear, (std::vector<std::string>{"PLAIN", "LOGIN"}));
}

TEST(WireCodec, AuditResultAppendsLanAndAuthToTheStructOfBefore) {
  // Members are only ever appended: the signature up to findings is the one of before.
  EXPECT_EQ(sdbus::signature_of<wire::AuditResult>::str(),
            "(isqsiusssassbssasa(sssbqs)a(ssssassas)as)");
  // A transcript line that looks like the old summary lines is just a line now.
  AuditReport r;
  AuditResult a;
  a.transcript = {"# lan 198.18.4.0/24 from 198.18.4.3 to 198.18.4.1: open plain"};
  r.results = {a};
  const auto x = codec::decode(codec::encode(r)).results.at(0);
  EXPECT_TRUE(x.lan.empty());
  EXPECT_EQ(x.transcript, a.transcript);
}

TEST(WireCodec, AuditReportRoundTripsWithResultsAndFindings) {
  AuditReport r;
  r.finishedUs = 123;
  r.running = true;
  r.error = "probe failed";
  AuditResult a;
  a.family = 6;
  a.address = "::";
  a.port = 465;
  a.exposure = "external";
  a.pid = 77;
  a.uid = 108;
  a.path = "/usr/sbin/exim4";
  a.comm = "exim4";
  a.relay = "open";
  a.accepted = {"plain", "percent-hack"};
  a.reason = "accepted RCPT for a foreign domain";
  a.blockedByFirewall = true;
  a.probedAddress = "fd99::1";
  a.ownDomain = "example.org";
  a.transcript = {"220 hi", "250 ok"};
  a.findings = {{"critical", "open relay", "set relay_domains", true, 465, "guardctl fw"}};
  r.results = {a};
  const auto b = codec::decode(codec::encode(r));
  EXPECT_EQ(b.finishedUs, r.finishedUs);
  EXPECT_EQ(b.running, r.running);
  EXPECT_EQ(b.error, r.error);
  ASSERT_EQ(b.results.size(), 1U);
  const auto& x = b.results[0];
  EXPECT_EQ(x.family, a.family);
  EXPECT_EQ(x.address, a.address);
  EXPECT_EQ(x.port, a.port);
  EXPECT_EQ(x.exposure, a.exposure);
  EXPECT_EQ(x.pid, a.pid);
  EXPECT_EQ(x.uid, a.uid);
  EXPECT_EQ(x.path, a.path);
  EXPECT_EQ(x.comm, a.comm);
  EXPECT_EQ(x.relay, a.relay);
  EXPECT_EQ(x.accepted, a.accepted);
  EXPECT_EQ(x.reason, a.reason);
  EXPECT_EQ(x.blockedByFirewall, a.blockedByFirewall);
  EXPECT_EQ(x.probedAddress, a.probedAddress);
  EXPECT_EQ(x.ownDomain, a.ownDomain);
  EXPECT_EQ(x.transcript, a.transcript);
  ASSERT_EQ(x.findings.size(), 1U);
  EXPECT_EQ(x.findings[0].severity, "critical");
  EXPECT_EQ(x.findings[0].title, "open relay");
  EXPECT_EQ(x.findings[0].fix, "set relay_domains");
  EXPECT_TRUE(x.findings[0].offerBlock);
  EXPECT_EQ(x.findings[0].port, 465);
  EXPECT_EQ(x.findings[0].blockCommand, "guardctl fw");
}

TEST(WireCodec, ListsKeepTheirOrder) {
  auto p1 = aProgram();
  auto p2 = aProgram();
  p2.id = 8;
  const auto back = codec::decodeAll(codec::encodeAll(std::vector<Program>{p1, p2}));
  ASSERT_EQ(back.size(), 2U);
  EXPECT_EQ(back[0].id, 7);
  EXPECT_EQ(back[1].id, 8);
}

}  // namespace
}  // namespace mailguard::dbus
