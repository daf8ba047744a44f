// SPDX-License-Identifier: GPL-2.0
/* mailguard's kernel side: at connect() to a mail port, who calls and what it executes.
 *
 * cgroup/connect4 and cgroup/connect6 decide from maps that guardd keeps:
 *   key in `denied`                  -> connect() fails with EPERM, no SYN leaves;
 *   untainted and key in `approved`  -> the mark bit is OR-ed into SO_MARK, and the
 *                                       nft table accepts the SYN before its queue rule;
 *   anything else                    -> the socket cookie is stamped with the calling
 *                                       task, and the SYN goes to the queue as before.
 * Interpreters need nothing here: guardd never puts an interpreter's key in `approved`
 * (the script is the identity, and only user space can see which one runs), so their
 * SYNs are always stamped and queued.
 *
 * Taints are kept per address space (the task's mm pointer): exec makes a new mm, so a
 * taint never outlives the program image it was earned by; fork copies the parent's
 * mappings, so it copies the taint too. The taint hooks come in three flavours, and guardd
 * loads the first one the kernel runs: BPF LSM (lsm/...) where the kernel runs the "bpf"
 * LSM, fentry on the security_* functions elsewhere, and syscall-entry tracepoints where
 * the kernel refuses trampoline programs (both lsm and fentry need one). Nothing here ever
 * blocks a task.
 *
 * TCP Fast Open: sendto(MSG_FASTOPEN) on an unconnected socket runs the connect4/connect6
 * hooks too (checked on 6.18 by the netns tests: a denied key gets EPERM from sendto, an
 * approved one the mark), so the cgroup sendmsg4/6 hooks (UDP only) are not needed. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "mailguard_bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOL_SOCKET 1
#define SO_MARK 36
#define PROT_READ 0x1
#define PROT_EXEC 0x4
#define READ_IMPLIES_EXEC 0x0400000
#define PTRACE_MODE_ATTACH 0x02
#define S_IWGRP 00020
#define S_IWOTH 00002
#define MAX_ERRNO 4095

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 64);
  __type(key, __u16); /* host order */
  __type(value, __u8);
} mail_ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 8192);
  __type(key, struct mg_exe_key);
  __type(value, __u8);
} approved SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 8192);
  __type(key, struct mg_exe_key);
  __type(value, __u8);
} denied SEC(".maps");

/* socket cookie -> the task that connected it; LRU: a stamp guardd never asked for
 * (the SYN was never queued, the socket closed) ages out. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64);
  __type(value, struct mg_stamp);
} stamps SEC(".maps");

/* tuple -> cookie and stamp of a stamped socket, from its SYN (TCP_CONNECT_CB) until it
 * closes (STATE_CB): written by tuple_stamp below. A socket with the same tuple cannot
 * exist before the first one closed, so an entry is always the live socket's; one evicted
 * (LRU) is found through sock_diag instead. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 8192);
  __type(key, struct mg_tuple);
  __type(value, struct mg_tuple_stamp);
} tuple_stamps SEC(".maps");

/* mm pointer -> MG_TAINT_* bits. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64);
  __type(value, __u32);
} taints SEC(".maps");

/* Refusals counted per program, user and generation (see mailguard_bpf.h). Not LRU: an
 * entry evicted would take uncounted refusals with it; when full, a refusal goes through
 * the ring buffer one by one instead. Allocated on use: most hosts never refuse. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct mg_refusal_key);
  __type(value, struct mg_refusal);
} refusals SEC(".maps");

/* mm pointer -> what exec recorded of its command line (struct mg_argv). Kept per
 * address space like the taints: exec makes a new one and records it; fork copies the
 * parent's (the child's argv area is a copy of the parent's memory). */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64);
  __type(value, struct mg_argv);
} argvs SEC(".maps");

/* The exec hook's copy of an argv area (one more word: the final, zero-padded one). */
#define MG_ARGV_WORDS (MG_ARGV_HASH_BOUND / 8)
struct argv_buf {
  __u64 w[MG_ARGV_WORDS + 1];
};
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct argv_buf);
} argv_scratch SEC(".maps");

/* guardd's secret SipHash key, set before load. Without it a program could choose its
 * original command line so that the one it rewrites itself to hashes the same. */
const volatile __u64 argv_key[2] = {0, 0};

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, MG_COUNTER_MAX);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct mg_config);
} mg_config SEC(".maps");

/* struct inode's ctime moved: `i_ctime` (timespec64) until 6.5, `__i_ctime` in 6.6-6.10,
 * `i_ctime_sec` + `i_ctime_nsec` since 6.11. CO-RE picks the one this kernel has. */
struct inode___v611 {
  time64_t i_ctime_sec;
  u32 i_ctime_nsec;
} __attribute__((preserve_access_index));
struct inode___v66 {
  struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));
struct inode___old {
  struct timespec64 i_ctime;
} __attribute__((preserve_access_index));

static __always_inline void count(__u32 index) {
  __u64* n = bpf_map_lookup_elem(&counters, &index);
  if (n) *n += 1; /* per-CPU: no other writer */
}

static __always_inline void inode_ctime(struct inode* inode, struct mg_exe_key* key) {
  if (bpf_core_field_exists(struct inode___v611, i_ctime_sec)) {
    struct inode___v611* i = (void*)inode;
    key->ctime_sec = BPF_CORE_READ(i, i_ctime_sec);
    /* Since 6.13 the top bit of i_ctime_nsec flags "ctime was queried" (multigrain
     * timestamps); stat(2) masks it, and so do we. Nanoseconds fit in 30 bits. */
    key->ctime_nsec = BPF_CORE_READ(i, i_ctime_nsec) & 0x3fffffff;
  } else if (bpf_core_field_exists(struct inode___v66, __i_ctime)) {
    struct inode___v66* i = (void*)inode;
    key->ctime_sec = BPF_CORE_READ(i, __i_ctime.tv_sec);
    key->ctime_nsec = BPF_CORE_READ(i, __i_ctime.tv_nsec);
  } else {
    struct inode___old* i = (void*)inode;
    key->ctime_sec = BPF_CORE_READ(i, i_ctime.tv_sec);
    key->ctime_nsec = BPF_CORE_READ(i, i_ctime.tv_nsec);
  }
}

/* The key of the file the task executes (mm->exe_file); false for kernel threads. */
static __always_inline bool exe_key_of(struct task_struct* task, struct mg_exe_key* key) {
  struct inode* inode = BPF_CORE_READ(task, mm, exe_file, f_inode);
  if (!inode) return false;
  key->ino = BPF_CORE_READ(inode, i_ino);
  key->dev = BPF_CORE_READ(inode, i_sb, s_dev);
  inode_ctime(inode, key);
  return true;
}

static __always_inline __u32 taint_of(__u64 mm) {
  __u32* t = bpf_map_lookup_elem(&taints, &mm);
  return t ? *t : 0;
}

static __always_inline void taint_mm(__u64 mm, __u32 bits) {
  if (!mm) return;
  __u32* t = bpf_map_lookup_elem(&taints, &mm);
  if (t) {
    __sync_fetch_and_or(t, bits);
    return;
  }
  if (bpf_map_update_elem(&taints, &mm, &bits, BPF_NOEXIST) == 0) return;
  t = bpf_map_lookup_elem(&taints, &mm); /* another CPU inserted it first */
  if (t) __sync_fetch_and_or(t, bits);
}

/* Not root-owned, or writable by group or others. */
static __always_inline bool inode_untrusted(struct inode* inode) {
  if (!inode) return true;
  if (BPF_CORE_READ(inode, i_uid.val) != 0) return true;
  return (BPF_CORE_READ(inode, i_mode) & (S_IWGRP | S_IWOTH)) != 0;
}

/* An executable mapping of `file` into `mm`: a file anyone but root could have written
 * (the file or the folder it sits in) taints the address space. The program's own
 * executable is exempt: it is the identity itself, hashed by guardd before approval, and
 * an in-place rewrite changes its key. */
static __always_inline void exec_mapping(struct file* file, __u64 mm) {
  count(MG_COUNTER_TAINT_HOOK_CALLS);
  if (!file || !mm) return;
  struct inode* inode = BPF_CORE_READ(file, f_inode);
  struct inode* exe = BPF_CORE_READ((struct mm_struct*)mm, exe_file, f_inode);
  if (inode == exe) return;
  struct inode* dir = BPF_CORE_READ(file, f_path.dentry, d_parent, d_inode);
  if (inode_untrusted(inode) || inode_untrusted(dir)) taint_mm(mm, MG_TAINT_USER_MAPPING);
}

static __always_inline __u64 current_mm(void) {
  return (__u64)BPF_CORE_READ(bpf_get_current_task_btf(), mm);
}

/* ---- taint hooks, BPF LSM flavour: `ret` is the previous BPF LSM program's verdict,
 * passed on so that ours (which never denies) cannot undo another program's denial. */
static __always_inline int pass_on(int ret) { return (ret < 0 && ret >= -MAX_ERRNO) ? ret : 0; }

SEC("lsm/mmap_file")
int BPF_PROG(lsm_mmap_file, struct file* file, unsigned long reqprot, unsigned long prot,
             unsigned long flags, int ret) {
  if (prot & PROT_EXEC) exec_mapping(file, current_mm());
  return pass_on(ret);
}

SEC("lsm/file_mprotect")
int BPF_PROG(lsm_file_mprotect, struct vm_area_struct* vma, unsigned long reqprot,
             unsigned long prot, int ret) {
  if (prot & PROT_EXEC) exec_mapping(BPF_CORE_READ(vma, vm_file), (__u64)BPF_CORE_READ(vma, vm_mm));
  return pass_on(ret);
}

/* ptrace attach, /proc/PID/mem, process_vm_writev, pidfd_getfd all ask for
 * PTRACE_MODE_ATTACH; a task never asks about its own thread group (the kernel answers
 * that before the hook). A request later refused still taints: we cannot tell here. */
SEC("lsm/ptrace_access_check")
int BPF_PROG(lsm_ptrace_access_check, struct task_struct* child, unsigned int mode, int ret) {
  count(MG_COUNTER_TAINT_HOOK_CALLS);
  if (mode & PTRACE_MODE_ATTACH) taint_mm((__u64)BPF_CORE_READ(child, mm), MG_TAINT_MEM_ACCESS);
  return pass_on(ret);
}

/* PTRACE_TRACEME hands the parent the same power over our memory. */
SEC("lsm/ptrace_traceme")
int BPF_PROG(lsm_ptrace_traceme, struct task_struct* parent, int ret) {
  count(MG_COUNTER_TAINT_HOOK_CALLS);
  taint_mm(current_mm(), MG_TAINT_MEM_ACCESS);
  return pass_on(ret);
}

/* ---- taint hooks, fentry flavour (no BPF LSM needed). security_mmap_file() sees the
 * requested protection, before READ_IMPLIES_EXEC turns a readable mapping executable. */
SEC("fentry/security_mmap_file")
int BPF_PROG(fentry_mmap_file, struct file* file, unsigned long prot, unsigned long flags) {
  struct task_struct* task = bpf_get_current_task_btf();
  bool exec = (prot & PROT_EXEC) ||
              ((prot & PROT_READ) && (BPF_CORE_READ(task, personality) & READ_IMPLIES_EXEC));
  if (exec) exec_mapping(file, current_mm());
  return 0;
}

SEC("fentry/security_file_mprotect")
int BPF_PROG(fentry_file_mprotect, struct vm_area_struct* vma, unsigned long reqprot,
             unsigned long prot) {
  if (prot & PROT_EXEC) exec_mapping(BPF_CORE_READ(vma, vm_file), (__u64)BPF_CORE_READ(vma, vm_mm));
  return 0;
}

SEC("fentry/security_ptrace_access_check")
int BPF_PROG(fentry_ptrace_access_check, struct task_struct* child, unsigned int mode) {
  count(MG_COUNTER_TAINT_HOOK_CALLS);
  if (mode & PTRACE_MODE_ATTACH) taint_mm((__u64)BPF_CORE_READ(child, mm), MG_TAINT_MEM_ACCESS);
  return 0;
}

SEC("fentry/security_ptrace_traceme")
int BPF_PROG(fentry_ptrace_traceme, struct task_struct* parent) {
  count(MG_COUNTER_TAINT_HOOK_CALLS);
  taint_mm(current_mm(), MG_TAINT_MEM_ACCESS);
  return 0;
}

/* ---- taint hooks, tracepoint flavour: for kernels that refuse trampoline programs
 * (fentry and lsm both need one; some hardened or paravirtualised kernels answer EPERM).
 * It watches the syscalls that make those requests, at syscall entry, so it runs on every
 * syscall (one compare for all but five). Coarser than the security_* hooks: /proc/PID/mem
 * opened for writing and pidfd_getfd() are not seen (a live tracer still is, through
 * task->ptrace at connect), nor are 32-bit compat syscalls; pids are read in the initial
 * pid namespace. x86-64 syscall numbers: other architectures use lsm or fentry. */
#if defined(__TARGET_ARCH_x86)
#define NR_mmap 9
#define NR_mprotect 10
#define NR_ptrace 101
#define NR_process_vm_writev 311
#define NR_pkey_mprotect 329
#define MAP_ANONYMOUS 0x20
#define PTRACE_TRACEME 0
#define PTRACE_ATTACH 16
#define PTRACE_SEIZE 0x4206

extern struct task_struct* bpf_task_from_pid(s32 pid) __ksym __weak;
extern void bpf_task_release(struct task_struct* p) __ksym __weak;

static __always_inline void taint_pid(s32 pid, __u32 bits) {
  struct task_struct* t = bpf_task_from_pid(pid);
  if (!t) return;
  taint_mm((__u64)BPF_CORE_READ(t, mm), bits);
  bpf_task_release(t);
}

static long vma_file(struct task_struct* task, struct vm_area_struct* vma, void* data) {
  *(struct file**)data = BPF_CORE_READ(vma, vm_file);
  return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(tp_sys_enter, struct pt_regs* regs, long id) {
  if (id != NR_mmap && id != NR_mprotect && id != NR_pkey_mprotect && id != NR_ptrace &&
      id != NR_process_vm_writev)
    return 0;
  struct task_struct* task = bpf_get_current_task_btf();
  unsigned long a0 = BPF_CORE_READ(regs, di), a1 = BPF_CORE_READ(regs, si),
                a2 = BPF_CORE_READ(regs, dx);
  if (id == NR_mmap) {
    unsigned long flags = BPF_CORE_READ(regs, r10);
    int fd = (int)BPF_CORE_READ(regs, r8);
    bool exec = (a2 & PROT_EXEC) ||
                ((a2 & PROT_READ) && (BPF_CORE_READ(task, personality) & READ_IMPLIES_EXEC));
    if (!exec) return 0;
    count(MG_COUNTER_TAINT_HOOK_CALLS);
    if ((flags & MAP_ANONYMOUS) || fd < 0) return 0;
    struct fdtable* fdt = BPF_CORE_READ(task, files, fdt);
    if ((unsigned int)fd >= BPF_CORE_READ(fdt, max_fds)) return 0;
    struct file** fds = BPF_CORE_READ(fdt, fd);
    struct file* file = NULL;
    bpf_core_read(&file, sizeof(file), &fds[fd]);
    if (file) exec_mapping(file, current_mm());
  } else if (id == NR_mprotect || id == NR_pkey_mprotect) {
    if (!(a2 & PROT_EXEC)) return 0;
    struct file* file = NULL;
    bpf_find_vma(task, a0, vma_file, &file, 0);
    if (file) exec_mapping(file, current_mm());
  } else if (id == NR_ptrace) {
    if (a0 == PTRACE_TRACEME)
      taint_mm(current_mm(), MG_TAINT_MEM_ACCESS);
    else if (a0 == PTRACE_ATTACH || a0 == PTRACE_SEIZE)
      taint_pid((s32)a1, MG_TAINT_MEM_ACCESS);
  } else {
    taint_pid((s32)a0, MG_TAINT_MEM_ACCESS);
  }
  return 0;
}
#endif

/* ---- address-space lifetime (all flavours). */

/* A forked child shares its parent's mappings (and so its libraries) in a new mm: it
 * inherits the taint. An untainted parent clears whatever a freed mm at the same address
 * left behind. Runs before the child is first scheduled. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(fork_taint, struct task_struct* parent, struct task_struct* child) {
  __u64 pmm = (__u64)BPF_CORE_READ(parent, mm);
  __u64 cmm = (__u64)BPF_CORE_READ(child, mm);
  if (!cmm || cmm == pmm) return 0; /* a thread or vfork: same address space */
  __u32* t = bpf_map_lookup_elem(&taints, &pmm);
  if (t) {
    __u32 bits = *t;
    bpf_map_update_elem(&taints, &cmm, &bits, BPF_ANY);
  } else {
    bpf_map_delete_elem(&taints, &cmm);
  }
  /* The child's argv area is a copy of the parent's memory, rewritten or not: it was
   * exec'd with the parent's command line. */
  struct mg_argv* a = bpf_map_lookup_elem(&argvs, &pmm);
  if (a) {
    struct mg_argv copy = *a;
    bpf_map_update_elem(&argvs, &cmm, &copy, BPF_ANY);
  } else {
    bpf_map_delete_elem(&argvs, &cmm);
  }
  return 0;
}

#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND         \
  do {                   \
    v0 += v1;            \
    v1 = ROTL64(v1, 13); \
    v1 ^= v0;            \
    v0 = ROTL64(v0, 32); \
    v2 += v3;            \
    v3 = ROTL64(v3, 16); \
    v3 ^= v2;            \
    v0 += v3;            \
    v3 = ROTL64(v3, 21); \
    v3 ^= v0;            \
    v2 += v1;            \
    v1 = ROTL64(v1, 17); \
    v1 ^= v2;            \
    v2 = ROTL64(v2, 32); \
  } while (0)

/* SipHash-2-4 of the first MG_ARGV_HASH_BOUND bytes of the task's argv area, loaded as
 * native 64-bit words (guardd's argvDigest() does the same on the same machine). Right
 * after exec the area holds exactly what execve() was given: the kernel copied the
 * strings there and the program has not run yet, so the pages are present (this hook
 * cannot fault them in). False when the area cannot be read. */
static __always_inline bool argv_of(struct mm_struct* mm, struct mg_argv* out) {
  unsigned long start = BPF_CORE_READ(mm, arg_start), end = BPF_CORE_READ(mm, arg_end);
  if (end < start) return false;
  unsigned long len = end - start;
  __u32 n = len > MG_ARGV_HASH_BOUND ? MG_ARGV_HASH_BOUND : (__u32)len;
  __u32 zero = 0;
  struct argv_buf* buf = bpf_map_lookup_elem(&argv_scratch, &zero);
  if (!buf) return false;
  __u32 words = n / 8;
  if (words > MG_ARGV_WORDS) return false;
  buf->w[words] = 0; /* the final word's bytes past n stay zero */
  if (n > MG_ARGV_HASH_BOUND) return false;
  if (bpf_probe_read_user(buf->w, n, (const void*)start) != 0) return false;

  __u64 v0 = 0x736f6d6570736575ULL ^ argv_key[0];
  __u64 v1 = 0x646f72616e646f6dULL ^ argv_key[1];
  __u64 v2 = 0x6c7967656e657261ULL ^ argv_key[0];
  __u64 v3 = 0x7465646279746573ULL ^ argv_key[1];
  for (__u32 i = 0; i < MG_ARGV_WORDS; i++) {
    if (i >= words) break;
    __u64 m = buf->w[i];
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
  }
  __u64 b = ((__u64)n << 56) | buf->w[words];
  v3 ^= b;
  SIPROUND;
  SIPROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  out->hash = v0 ^ v1 ^ v2 ^ v3;
  out->len = len > 0xffffffffUL ? 0xffffffffU : (__u32)len;
  out->known = 1;
  return true;
}

/* exec gave the task a fresh mm: start it clean. The mappings exec itself made (the
 * executable and its ELF interpreter) are the approved binary's own choice. And record
 * its command line while it is still what execve() was given: a program can rewrite its
 * argv area later (it is ordinary writable memory; /proc/self/mem writes it too), and
 * /proc/PID/cmdline then shows the new text. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_taint, struct task_struct* p, pid_t old_pid, struct linux_binprm* bprm) {
  struct mm_struct* m = BPF_CORE_READ(p, mm);
  __u64 mm = (__u64)m;
  if (!mm) return 0;
  bpf_map_delete_elem(&taints, &mm);
  struct mg_argv a = {};
  if (argv_of(m, &a))
    bpf_map_update_elem(&argvs, &mm, &a, BPF_ANY);
  else
    bpf_map_delete_elem(&argvs, &mm);
  return 0;
}

/* ---- connect hooks */

static __always_inline void fill_stamp(struct task_struct* task, struct mg_stamp* s) {
  s->tgid = BPF_CORE_READ(task, tgid);
  s->tid = BPF_CORE_READ(task, pid);
  s->ppid = BPF_CORE_READ(task, real_parent, tgid);
  s->uid = BPF_CORE_READ(task, cred, uid.val);
  /* /proc/PID/stat's start time is the thread group leader's. */
  s->start_boottime = BPF_CORE_READ(task, group_leader, start_boottime);
  if (!exe_key_of(task, &s->key)) __builtin_memset(&s->key, 0, sizeof(s->key));
  __u64 mm = (__u64)BPF_CORE_READ(task, mm);
  s->taint = taint_of(mm);
  struct mg_argv* a = bpf_map_lookup_elem(&argvs, &mm);
  if (a) s->argv = *a; /* else known = 0: the caller zeroed the stamp */
  /* A tracer attached now (PTRACE_TRACEME before exec, or an attach whose taint the LRU
   * map lost) can still change what this task does. */
  if (BPF_CORE_READ(task, ptrace) != 0) s->taint |= MG_TAINT_TRACED;
}

/* When an approved connect's event last woke guardd (bpf_ktime_get_ns). Racy across CPUs
 * on purpose: two connects at once may both wake it, which is harmless. */
__u64 approved_woken_ns = 0;

/* False when the ring buffer is full: the caller counts the loss (never wait: the
 * connect goes on unreported).
 * Wake-ups: a queued connect's event wakes no one (its SYN wakes guardd through the queue,
 * where the stamp is read; the event is read with the next one, or on guardd's 250 ms
 * refusal timer), so a queued connect costs guardd one wake-up, not two. An approved
 * connect needs nothing from guardd (the kernel has let it through), only to be recorded
 * and assessed: waking guardd for each one cost the connect itself about 20 us on a
 * loaded 2-core machine (guardd ran beside the client), so it wakes guardd only when no
 * approved connect did for MG_APPROVED_WAKE_NS. The first of a burst is read at once and
 * the rest at most 50 ms later while the burst goes on (the next wake-up), or at
 * guardd's next timer tick (250 ms) after it. A quarantine the detector decides from
 * them still takes effect on the kernel map at once; the detector sees a burst up to
 * 50 ms late (250 ms for its last connects), against windows of 3 s and more.
 * The default (adaptive) wake-up notifies only when the consumer has read everything
 * before this record, which after a silent event it has not: so a refused connect, and
 * an approved one that is to wake guardd, force the wake-up when unread data is waiting,
 * and are adaptive otherwise. */
static __always_inline bool send_event(struct mg_stamp* s, __u64 cookie, __u8 family,
                                       const __u8* dst, __u16 port, __u8 decision) {
  __u64 wakeup = 0;
  if (decision == MG_DECISION_QUEUED) {
    wakeup = BPF_RB_NO_WAKEUP;
  } else if (decision == MG_DECISION_APPROVED &&
             bpf_ktime_get_ns() - approved_woken_ns < MG_APPROVED_WAKE_NS) {
    wakeup = BPF_RB_NO_WAKEUP;
  } else {
    if (decision == MG_DECISION_APPROVED) {
      approved_woken_ns = bpf_ktime_get_ns();
      count(MG_COUNTER_APPROVED_WAKEUPS);
    }
    if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) != 0) wakeup = BPF_RB_FORCE_WAKEUP;
  }
  struct mg_event* e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) return false;
  e->cookie = cookie;
  e->task = *s;
  __builtin_memcpy(e->dst, dst, 16);
  e->dst_port = port;
  e->family = family;
  e->decision = decision;
  e->pad = 0;
  e->time_ns = bpf_ktime_get_ns();
  bpf_ringbuf_submit(e, wakeup);
  return true;
}

static __always_inline void report(struct mg_stamp* s, __u64 cookie, __u8 family, const __u8* dst,
                                   __u16 port, __u8 decision) {
  if (!send_event(s, cookie, family, dst, port, decision)) count(MG_COUNTER_EVENTS_LOST);
}

static __always_inline bool same_addr(const __u8* a, const __u8* b) {
  __u64 a0, a1, b0, b1;
  __builtin_memcpy(&a0, a, 8);
  __builtin_memcpy(&a1, a + 8, 8);
  __builtin_memcpy(&b0, b, 8);
  __builtin_memcpy(&b1, b + 8, 8);
  return a0 == b0 && a1 == b1;
}

/* A refusal: the first of its entry (program, user, generation) is an event, so guardd
 * learns of a refused program at once; the next ones are only counted, with the first
 * few distinct destinations, and guardd reports them on its timer. A refusal the ring
 * buffer has no room for is counted too (not lost); one the full map has no room for
 * goes one by one. */
static __always_inline void refused(struct mg_stamp* s, __u64 cookie, __u8 family, const __u8* dst,
                                    __u16 port) {
  __u32 zero = 0;
  struct mg_config* cfg = bpf_map_lookup_elem(&mg_config, &zero);
  struct mg_refusal_key rk = {};
  rk.key = s->key;
  rk.uid = s->uid;
  rk.generation = cfg ? cfg->generation : 0;
  struct mg_refusal* r = bpf_map_lookup_elem(&refusals, &rk);
  if (!r) {
    struct mg_refusal fresh = {};
    fresh.tgid = s->tgid;
    fresh.ppid = s->ppid;
    fresh.ndst = 1;
    __builtin_memcpy(fresh.dst[0].addr, dst, 16);
    fresh.dst[0].port = port;
    fresh.dst[0].family = family;
    if (bpf_map_update_elem(&refusals, &rk, &fresh, BPF_NOEXIST) == 0 &&
        send_event(s, cookie, family, dst, port, MG_DECISION_DENIED))
      return;
    r = bpf_map_lookup_elem(&refusals, &rk); /* ours, or another CPU's */
    if (!r) {
      report(s, cookie, family, dst, port, MG_DECISION_DENIED); /* the map is full */
      return;
    }
  }
  __sync_fetch_and_add(&r->count, 1);
  r->tgid = s->tgid;
  r->ppid = s->ppid;
  __u32 n = r->ndst;
  if (n >= MG_REFUSAL_DSTS) return;
  for (__u32 i = 0; i < MG_REFUSAL_DSTS; i++) {
    if (i >= n) break;
    if (r->dst[i].port == port && r->dst[i].family == family && same_addr(r->dst[i].addr, dst))
      return;
  }
  /* Two CPUs may claim slots for the same new destination: a duplicate, harmless. */
  __u32 slot = __sync_fetch_and_add(&r->ndst, 1);
  if (slot >= MG_REFUSAL_DSTS) return;
  __builtin_memcpy(r->dst[slot].addr, dst, 16);
  r->dst[slot].port = port;
  r->dst[slot].family = family;
}

/* ---- DNS tap: which task asks what of a name server, and what it is told.
 *
 * A socket a task connects (glibc's resolver connects its UDP socket; TCP always does)
 * or sends to (sendto() on an unconnected UDP socket) on port 53 is stamped with that
 * task, by cookie, in `dns_stamps`; the cgroup_skb programs copy the payload of that
 * socket's port-53 packets, both ways, to `dns_events`. Only stamped sockets are copied:
 * a name server's own listening socket (dnsmasq answering) never is. The skb programs
 * always return 1: the tap never drops or delays a packet; what the ring buffer has no
 * room for is counted. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 8192);
  __type(key, __u64);
  __type(value, struct mg_stamp);
} dns_stamps SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 512 * 1024);
} dns_events SEC(".maps");

static __always_inline void dns_stamp(void* ctx) {
  struct mg_stamp s = {};
  fill_stamp(bpf_get_current_task_btf(), &s);
  __u64 cookie = bpf_get_socket_cookie(ctx);
  bpf_map_update_elem(&dns_stamps, &cookie, &s, BPF_ANY);
}

SEC("cgroup/sendmsg4")
int dns_sendmsg4(struct bpf_sock_addr* ctx) {
  if (bpf_ntohs((__u16)ctx->user_port) == MG_DNS_PORT) dns_stamp(ctx);
  return 1;
}

SEC("cgroup/sendmsg6")
int dns_sendmsg6(struct bpf_sock_addr* ctx) {
  if (bpf_ntohs((__u16)ctx->user_port) == MG_DNS_PORT) dns_stamp(ctx);
  return 1;
}

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

/* ---- reply tap: what a mail server answers a program's own SMTP session.
 *
 * The connect hook records each port-25 socket it lets through (approved or queued) in
 * `smtp_socks`, with the connecting task; the ingress program copies that socket's
 * segments from port 25 (the server's replies) to `smtp_events`. Egress, the program's
 * commands and message, is never copied. guardd deletes the entry when the session turns
 * to TLS (nothing after is readable) or it has read enough; a FIN or RST from the server
 * ends it here. LRU: a socket guardd never hears of again ages out. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 4096);
  __type(key, __u64);
  __type(value, struct mg_stamp);
} smtp_socks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);
} smtp_events SEC(".maps");

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_RST 0x04

static __always_inline void smtp_tap(struct __sk_buff* skb, __u32 off, __u8 family,
                                     const __u8* src) {
  __u8 hdr[14]; /* ports, seq, ack, data offset, flags */
  if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)) != 0) return;
  __u64 cookie = bpf_get_socket_cookie(skb);
  struct mg_stamp* s = bpf_map_lookup_elem(&smtp_socks, &cookie);
  if (!s) return;
  __u8 flags = hdr[13];
  __u32 payload_off = off + (__u32)(hdr[12] >> 4) * 4;
  __u32 len = skb->len > payload_off ? skb->len - payload_off : 0;
  __u8 closed = (flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) != 0;
  if (len == 0 && !closed) return; /* a bare ACK */
  struct mg_smtp_event* e = bpf_ringbuf_reserve(&smtp_events, sizeof(*e), 0);
  if (!e) {
    count(MG_COUNTER_SMTP_LOST);
  } else {
    __u32 n = len > MG_SMTP_CAPTURE ? MG_SMTP_CAPTURE : len;
    e->cookie = cookie;
    e->task = *s;
    __builtin_memcpy(e->server, src, 16);
    __u32 seq;
    __builtin_memcpy(&seq, hdr + 4, 4);
    e->seq = bpf_ntohl(seq);
    e->len = len;
    e->family = family;
    e->closed = closed;
    e->pad = 0;
    e->captured = 0;
    if (n >= 1 && n <= MG_SMTP_CAPTURE && bpf_skb_load_bytes(skb, payload_off, e->data, n) == 0)
      e->captured = (__u16)n;
    bpf_ringbuf_submit(e, 0);
  }
  if (closed) bpf_map_delete_elem(&smtp_socks, &cookie);
}

/* cgroup_skb programs see the packet from its network header on, both ways. IPv6 with
 * extension headers before the transport header, and IPv4 fragments after the first, are
 * not looked into (resolvers send neither for a query, TCP never fragments). */
static __always_inline void dns_tap(struct __sk_buff* skb, __u8 ingress) {
  __u32 off = 0;
  __u8 proto = 0;
  __u8 family = 0;
  __u8 src[16] = {};
  if (skb->protocol == bpf_htons(ETH_P_IP)) {
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) != 0) return;
    if (ip.frag_off & bpf_htons(0x1fff)) return;
    off = (__u32)ip.ihl * 4;
    proto = ip.protocol;
    family = AF_INET;
    __builtin_memcpy(src, &ip.saddr, 4);
  } else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr ip6;
    if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) != 0) return;
    off = sizeof(ip6);
    proto = ip6.nexthdr;
    family = AF_INET6;
    __builtin_memcpy(src, &ip6.saddr, 16);
  } else {
    return;
  }
  __u16 ports[2];
  if (proto != IPPROTO_UDP && proto != IPPROTO_TCP) return;
  if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) != 0) return;
  if (ingress && proto == IPPROTO_TCP && bpf_ntohs(ports[0]) == MG_SMTP_PORT) {
    smtp_tap(skb, off, family, src);
    return;
  }
  if (bpf_ntohs(ingress ? ports[0] : ports[1]) != MG_DNS_PORT) return;
  if (proto == IPPROTO_UDP) {
    off += 8;
  } else {
    __u8 doff = 0;
    if (bpf_skb_load_bytes(skb, off + 12, &doff, 1) != 0) return;
    off += (__u32)(doff >> 4) * 4;
  }
  if (skb->len <= off) return; /* no payload: a bare ACK, SYN or FIN */
  __u64 cookie = bpf_get_socket_cookie(skb);
  struct mg_stamp* s = bpf_map_lookup_elem(&dns_stamps, &cookie);
  if (!s) return;
  struct mg_dns_event* e = bpf_ringbuf_reserve(&dns_events, sizeof(*e), 0);
  if (!e) {
    count(MG_COUNTER_DNS_LOST);
    return;
  }
  __u32 len = skb->len - off;
  __u32 n = len > MG_DNS_CAPTURE ? MG_DNS_CAPTURE : len;
  e->cookie = cookie;
  e->task = *s;
  e->len = len;
  e->ingress = ingress;
  e->tcp = proto == IPPROTO_TCP;
  e->captured = 0;
  if (n >= 1 && n <= MG_DNS_CAPTURE && bpf_skb_load_bytes(skb, off, e->data, n) == 0)
    e->captured = (__u16)n;
  bpf_ringbuf_submit(e, 0);
}

SEC("cgroup_skb/egress")
int dns_egress(struct __sk_buff* skb) {
  dns_tap(skb, 0);
  return 1;
}

SEC("cgroup_skb/ingress")
int dns_ingress(struct __sk_buff* skb) {
  dns_tap(skb, 1);
  return 1;
}

static __always_inline int decide(struct bpf_sock_addr* ctx, __u8 family, const __u8* dst) {
  __u16 port = bpf_ntohs((__u16)ctx->user_port);
  if (port == MG_DNS_PORT) {
    dns_stamp(ctx);
    return 1;
  }
  if (ctx->type != SOCK_STREAM || !bpf_map_lookup_elem(&mail_ports, &port)) return 1;

  struct mg_stamp s = {};
  fill_stamp(bpf_get_current_task_btf(), &s);
  __u64 cookie = bpf_get_socket_cookie(ctx);

  if (bpf_map_lookup_elem(&denied, &s.key)) {
    refused(&s, cookie, family, dst, port);
    return 0; /* connect() returns EPERM */
  }
  if (s.taint == 0 && bpf_map_lookup_elem(&approved, &s.key)) {
    __u32 zero = 0;
    struct mg_config* cfg = bpf_map_lookup_elem(&mg_config, &zero);
    int mark = 0;
    if (cfg && cfg->mark_bit &&
        bpf_getsockopt(ctx, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) == 0) {
      mark |= (int)cfg->mark_bit; /* OR-ed: VPN and policy-routing marks stay */
      if (bpf_setsockopt(ctx, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) == 0) {
        if (port == MG_SMTP_PORT) bpf_map_update_elem(&smtp_socks, &cookie, &s, BPF_ANY);
        report(&s, cookie, family, dst, port, MG_DECISION_APPROVED);
        return 1;
      }
    }
    /* No mark: the SYN goes to the queue, so stamp it like any other. */
  }
  bpf_map_update_elem(&stamps, &cookie, &s, BPF_ANY);
  if (port == MG_SMTP_PORT) bpf_map_update_elem(&smtp_socks, &cookie, &s, BPF_ANY);
  report(&s, cookie, family, dst, port, MG_DECISION_QUEUED);
  return 1;
}

SEC("cgroup/connect4")
int connect4(struct bpf_sock_addr* ctx) {
  __u8 dst[16] = {};
  __u32 ip = ctx->user_ip4;
  __builtin_memcpy(dst, &ip, 4);
  return decide(ctx, AF_INET, dst);
}

/* An IPv6 address, as a context's four words (network order), into `out` the way a packet
 * shows it: ::ffff:a.b.c.d (an IPv4 peer reached through an IPv6 socket, whose packets are
 * IPv4) as its 4 IPv4 bytes, and AF_INET; any other as its 16 bytes, and AF_INET6. */
static __always_inline __u8 addr6(__u32 w0, __u32 w1, __u32 w2, __u32 w3, __u8* out) {
  if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0x0000ffff)) {
    __builtin_memcpy(out, &w3, 4);
    return AF_INET;
  }
  __builtin_memcpy(out, &w0, 4);
  __builtin_memcpy(out + 4, &w1, 4);
  __builtin_memcpy(out + 8, &w2, 4);
  __builtin_memcpy(out + 12, &w3, 4);
  return AF_INET6;
}

SEC("cgroup/connect6")
int connect6(struct bpf_sock_addr* ctx) {
  __u8 dst[16] = {};
  const __u8 family =
      addr6(ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3], dst);
  return decide(ctx, family, dst);
}

/* ---- the stamp of a queued SYN by its tuple (sock_ops, same cgroup as the connect
 * hooks). At TCP_CONNECT_CB the source port is chosen and the SYN not sent yet. */

static __always_inline bool tuple_of(struct bpf_sock_ops* ops, struct mg_tuple* t) {
  t->sport = (__u16)ops->local_port;             /* host order */
  t->dport = (__u16)bpf_ntohl(ops->remote_port); /* network order, in the high half */
  if (ops->family == AF_INET) {
    __u32 src = ops->local_ip4, dst = ops->remote_ip4;
    t->family = AF_INET;
    __builtin_memcpy(t->saddr, &src, 4);
    __builtin_memcpy(t->daddr, &dst, 4);
    return true;
  }
  if (ops->family != AF_INET6) return false;
  /* An IPv4-mapped socket's local address is mapped too: both come out as IPv4. */
  t->family = addr6(ops->remote_ip6[0], ops->remote_ip6[1], ops->remote_ip6[2], ops->remote_ip6[3],
                    t->daddr);
  addr6(ops->local_ip6[0], ops->local_ip6[1], ops->local_ip6[2], ops->local_ip6[3], t->saddr);
  return true;
}

SEC("sockops")
int tuple_stamp(struct bpf_sock_ops* ops) {
  struct mg_tuple t = {};
  if (ops->op == BPF_SOCK_OPS_TCP_CONNECT_CB) {
    if (!tuple_of(ops, &t)) return 1;
    __u64 cookie = bpf_get_socket_cookie(ops);
    struct mg_stamp* s = bpf_map_lookup_elem(&stamps, &cookie);
    if (!s) {
      /* Not stamped (another port, or approved and marked): no entry may name it. */
      bpf_map_delete_elem(&tuple_stamps, &t);
      return 1;
    }
    struct mg_tuple_stamp v = {};
    v.cookie = cookie;
    v.stamp = *s;
    bpf_map_update_elem(&tuple_stamps, &t, &v, BPF_ANY);
    bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
  } else if (ops->op == BPF_SOCK_OPS_STATE_CB && ops->args[1] == BPF_TCP_CLOSE) {
    if (tuple_of(ops, &t)) bpf_map_delete_elem(&tuple_stamps, &t);
  }
  return 1;
}
