/* Out-of-line wrappers for DPDK's static-inline functions, which are not
 * exported by the shared libraries. Each is one call; the names carry a
 * `patronus_` prefix so they never collide with a future exported symbol. */
#ifndef PATRONUS_SHIM_H
#define PATRONUS_SHIM_H

#include <stdint.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

uint16_t patronus_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                                   struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t patronus_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                                   struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

struct rte_mbuf *patronus_rte_pktmbuf_alloc(struct rte_mempool *mp);
int patronus_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                    unsigned int count);
void patronus_rte_pktmbuf_free(struct rte_mbuf *m);
void patronus_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);
void patronus_rte_pktmbuf_reset(struct rte_mbuf *m);

char *patronus_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *patronus_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
char *patronus_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int patronus_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void *patronus_rte_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t patronus_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t patronus_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
struct rte_mempool *patronus_rte_mbuf_pool(const struct rte_mbuf *m);

unsigned int patronus_rte_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table,
                                             unsigned int n, unsigned int *free_space);
unsigned int patronus_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table,
                                             unsigned int n, unsigned int *available);
unsigned int patronus_rte_ring_count(const struct rte_ring *r);

unsigned int patronus_rte_lcore_id(void);
int patronus_rte_errno(void);
uint64_t patronus_rte_rdtsc(void);
uint64_t patronus_rte_get_tsc_hz(void);

#endif
