/* Shared by the OpenSSL uprobe program (openssl.bpf.c) and its loader (probes.py): the
 * event layout, map sizes, counter slots. probes.py mirrors the struct with ctypes and
 * reads the constants from this file; a test checks the two agree. */
#ifndef KUBEWEIR_TLS_EVENT_H
#define KUBEWEIR_TLS_EVENT_H

#define KW_TLS_CHUNK 16384      /* plaintext bytes per event */
#define KW_TLS_MAX_CHUNKS 4     /* events per call: bytes past 64 KiB are reported, not copied */
#define KW_TLS_MAX_PIDS 65536   /* targeted processes (tgids) */
#define KW_TLS_INFLIGHT 65536   /* threads inside an SSL call at once */
#define KW_TLS_RING_PAGES 1024  /* ring buffer: 4 MiB */

/* Event kinds */
#define KW_TLS_DATA 1   /* plaintext of one SSL_read/SSL_write (one chunk of it) */
#define KW_TLS_EXEC 2   /* a process exec'd: user space decides whether it is targeted */
#define KW_TLS_FREE 4   /* SSL_free: the SSL* (and its connection) is done */
#define KW_TLS_ADDR 3   /* a socket address a targeted process got from accept/getpeername/
                           getsockname: data = the sockaddr, fd = the socket, dir = which */

/* `dir` of KW_TLS_ADDR events */
#define KW_TLS_PEER 0
#define KW_TLS_LOCAL 1
#define KW_TLS_ADDR_MAX 28  /* sizeof(struct sockaddr_in6) */

/* Directions of data */
#define KW_TLS_READ 0   /* SSL_read / SSL_read_ex: bytes the process received */
#define KW_TLS_WRITE 1  /* SSL_write / SSL_write_ex: bytes the process sent */

/* Slots of the per-CPU `counters` array */
#define KW_TLS_CALLS 0        /* targeted SSL calls that returned data */
#define KW_TLS_EVENTS 1       /* data events submitted */
#define KW_TLS_RING_FULL 2    /* events lost: ring buffer full */
#define KW_TLS_READ_FAULT 3   /* the user buffer could not be read */
#define KW_TLS_TRUNCATED 4    /* calls longer than KW_TLS_CHUNK * KW_TLS_MAX_CHUNKS */
#define KW_TLS_COUNTERS 5

struct kw_tls_event {
    unsigned long long ts_ns;   /* bpf_ktime_get_ns() at the call's return */
    unsigned long long ssl;     /* the SSL* */
    unsigned int kind;          /* KW_TLS_DATA / KW_TLS_EXEC */
    unsigned int tgid;          /* process */
    unsigned int tid;           /* thread */
    int fd;                     /* socket fd of the SSL* when known, else -1 */
    unsigned int dir;           /* KW_TLS_READ / KW_TLS_WRITE */
    unsigned int len;           /* true length of the call's plaintext */
    unsigned int off;           /* offset of this chunk in it */
    unsigned int size;          /* bytes of this chunk in data[] */
    unsigned char data[KW_TLS_CHUNK];
};

#endif
