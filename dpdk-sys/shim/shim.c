/* See shim.h. Compiled by build.rs with the cflags pkg-config gives for
 * libdpdk, so the inline bodies are the installed DPDK's own. */
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include "shim.h"

uint16_t patronus_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                                   struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{ return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts); }

uint16_t patronus_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                                   struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{ return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts); }

struct rte_mbuf *patronus_rte_pktmbuf_alloc(struct rte_mempool *mp)
{ return rte_pktmbuf_alloc(mp); }

int patronus_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                    unsigned int count)
{ return rte_pktmbuf_alloc_bulk(mp, mbufs, count); }

void patronus_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

void patronus_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count)
{ rte_pktmbuf_free_bulk(mbufs, count); }

void patronus_rte_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }

char *patronus_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{ return rte_pktmbuf_prepend(m, len); }

char *patronus_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{ return rte_pktmbuf_adj(m, len); }

char *patronus_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{ return rte_pktmbuf_append(m, len); }

int patronus_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{ return rte_pktmbuf_trim(m, len); }

void *patronus_rte_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

uint16_t patronus_rte_pktmbuf_headroom(const struct rte_mbuf *m)
{ return rte_pktmbuf_headroom(m); }

uint16_t patronus_rte_pktmbuf_tailroom(const struct rte_mbuf *m)
{ return rte_pktmbuf_tailroom(m); }

struct rte_mempool *patronus_rte_mbuf_pool(const struct rte_mbuf *m) { return m->pool; }

unsigned int patronus_rte_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table,
                                             unsigned int n, unsigned int *free_space)
{ return rte_ring_enqueue_burst(r, obj_table, n, free_space); }

unsigned int patronus_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table,
                                             unsigned int n, unsigned int *available)
{ return rte_ring_dequeue_burst(r, obj_table, n, available); }

unsigned int patronus_rte_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }

unsigned int patronus_rte_lcore_id(void) { return rte_lcore_id(); }

int patronus_rte_errno(void) { return rte_errno; }

uint64_t patronus_rte_rdtsc(void) { return rte_rdtsc(); }

uint64_t patronus_rte_get_tsc_hz(void) { return rte_get_tsc_hz(); }
