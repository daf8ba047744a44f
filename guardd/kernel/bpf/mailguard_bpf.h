/* Map keys, values and events shared by the BPF programs (mailguard.bpf.c) and guardd
 * (bpf_kernel_identity.cpp). Fixed-size types only, explicit padding, so both compilers
 * lay them out the same; the C++ side static_asserts the sizes. */
#ifndef MAILGUARD_KERNEL_BPF_H
#define MAILGUARD_KERNEL_BPF_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Taint bits: the same values as mailguard::kernel::Taint. */
#define MG_TAINT_USER_MAPPING (1U << 0)
#define MG_TAINT_TRACED (1U << 1)
#define MG_TAINT_MEM_ACCESS (1U << 2)

/* Decisions: the order of mailguard::kernel::ConnectEvent::Decision. */
#define MG_DECISION_APPROVED 0
#define MG_DECISION_DENIED 1
#define MG_DECISION_QUEUED 2

/* An approved connect's event wakes guardd only when none did in this long (ns): the
 * rest are read in batches (mailguard::kernel::kApprovedWakeInterval). */
#define MG_APPROVED_WAKE_NS (50ULL * 1000 * 1000)

/* What the kernel knows an executable by: inode, the kernel's device encoding
 * (major << 20 | minor) and the inode's ctime. */
struct mg_exe_key {
  __u64 ino;
  __u32 dev;
  __u32 pad;
  __s64 ctime_sec;
  __s64 ctime_nsec;
};

/* What the exec hook recorded of the new program's command line: the argv area
 * (mm->arg_start..arg_end, the bytes /proc/PID/cmdline gives) as the kernel copied it
 * there, before the program could write to it. `hash` is SipHash-2-4, keyed with
 * guardd's secret key (the program cannot make another command line hash the same), of
 * the first MG_ARGV_HASH_BOUND bytes; `len` the whole area's length. */
#define MG_ARGV_HASH_BOUND 4096

struct mg_argv {
  __u64 hash;
  __u32 len;
  __u32 known; /* 0: nothing recorded for this address space (see mailguard.bpf.c) */
};

/* The task that called connect() on a socket left to the queue. */
struct mg_stamp {
  __u32 tgid;
  __u32 tid;
  __u32 ppid;
  __u32 uid;
  __u64 start_boottime;
  struct mg_exe_key key;
  __u32 taint;
  __u32 pad;
  struct mg_argv argv;
};

/* A TCP socket's addresses and ports, as its queued SYN shows them: IPv4 in the first 4
 * bytes of each address (an IPv4-mapped IPv6 socket's too), network order; ports in host
 * order. */
struct mg_tuple {
  __u8 family; /* AF_INET (2) or AF_INET6 (10) */
  __u8 pad[3];
  __u16 sport;
  __u16 dport;
  __u8 saddr[16];
  __u8 daddr[16];
};

/* A stamped socket by its tuple, while it is not closed: the queued SYN's stamp in one
 * lookup, without asking sock_diag for the socket's cookie first. */
struct mg_tuple_stamp {
  __u64 cookie;
  struct mg_stamp stamp;
};

/* One connect() to a mail port, as sent through the ring buffer. */
struct mg_event {
  __u64 cookie;
  struct mg_stamp task;
  __u8 dst[16];   /* IPv4 in the first 4 bytes; network order */
  __u16 dst_port; /* host order */
  __u8 family;    /* AF_INET (2) or AF_INET6 (10) */
  __u8 decision;  /* MG_DECISION_* */
  __u32 pad;
  __u64 time_ns; /* bpf_ktime_get_ns() at connect(): CLOCK_MONOTONIC */
};

/* Refusals of one program (key) by one user, counted in the kernel per interval: a
 * denied bot refusing at 100,000 connects a second (each to a new address, as a spam bot
 * does) must not cost guardd one event each. The first refusal of an entry goes through
 * the ring buffer like any connect; the rest are counted, with the first few distinct
 * destinations. guardd flips `generation` on a timer and reports and deletes the entries
 * of the generation before, which no program writes any more. */
#define MG_REFUSAL_DSTS 4

struct mg_refusal_key {
  struct mg_exe_key key;
  __u32 uid;
  __u32 generation; /* mg_config.generation when the entry was made */
};

struct mg_dest {
  __u8 addr[16]; /* as in mg_event */
  __u16 port;    /* host order */
  __u8 family;
  __u8 pad[5];
};

struct mg_refusal {
  __u64 count; /* refusals not reported one by one; only ever added to */
  /* The latest refused task (plain stores: a reader may see two tasks' fields mixed). */
  __u32 tgid;
  __u32 ppid;
  __u32 ndst; /* destinations claimed in dst (claims beyond MG_REFUSAL_DSTS are dropped) */
  __u32 pad;
  struct mg_dest dst[MG_REFUSAL_DSTS];
};

/* The one entry of the `config` array map. */
struct mg_config {
  __u32 mark_bit;   /* exactly one bit, OR-ed into approved sockets' SO_MARK */
  __u32 generation; /* of the refusal counts (0 or 1), flipped by guardd */
};

/* The DNS tap: the payload of one port-53 packet (UDP, or one TCP segment with its
 * 2-byte length prefix) of a socket a task connected or sent to port 53, with that task.
 * At most MG_DNS_CAPTURE bytes of it; `len` is the payload's whole length. */
#define MG_DNS_PORT 53
#define MG_DNS_CAPTURE 1024

struct mg_dns_event {
  __u64 cookie;
  struct mg_stamp task;
  __u32 len;      /* the payload's length on the wire */
  __u16 captured; /* bytes of it in data */
  __u8 ingress;   /* 1: from port 53 (an answer), 0: to port 53 (a question) */
  __u8 tcp;       /* 1: TCP (data starts with the length prefix), 0: UDP */
  __u8 data[MG_DNS_CAPTURE];
};

/* The reply tap: what a mail server sends on port 25 to a socket the connect hook saw
 * (approved or queued), one TCP segment per event, so guardd can read the RCPT-stage reply
 * codes of a program's own plaintext session. Only the server's side: segments the
 * program sends are never copied. `seq` lets guardd drop retransmissions and notice gaps. */
#define MG_SMTP_PORT 25
#define MG_SMTP_CAPTURE 1024

struct mg_smtp_event {
  __u64 cookie;
  struct mg_stamp task; /* who connected the socket */
  __u8 server[16];      /* the packet's source address; IPv4 in the first 4 bytes */
  __u32 seq;            /* TCP sequence number of the payload's first byte */
  __u32 len;            /* the payload's length on the wire */
  __u16 captured;       /* bytes of it in data */
  __u8 family;          /* AF_INET (2) or AF_INET6 (10) */
  __u8 closed;          /* 1: the server sent FIN or RST (the session is over) */
  __u32 pad;
  __u8 data[MG_SMTP_CAPTURE];
};

/* Indexes into the per-CPU `counters` array. */
#define MG_COUNTER_EVENTS_LOST 0
#define MG_COUNTER_TAINT_HOOK_CALLS 1 /* proves the taint hooks run (BPF LSM active) */
#define MG_COUNTER_DNS_LOST 2         /* DNS packets the tap's ring buffer had no room for */
#define MG_COUNTER_SMTP_LOST 3        /* port-25 segments the reply tap had no room for */
#define MG_COUNTER_APPROVED_WAKEUPS 4 /* approved connects whose event woke the reader */
#define MG_COUNTER_MAX 5

#endif
