/* batching: epoch order, global batches and their shards over ranks.
 *
 * Each epoch visits a task's samples in a seeded shuffle (a Fisher-Yates
 * shuffle driven by a counter-based generator keyed by seed, task and epoch,
 * so every rank computes the same order without communicating) or in file
 * order. The order is cut into global batches of batch_size samples, the
 * last one possibly smaller. Each rank takes a contiguous slice of every
 * global batch; the slices of ranks 0 .. size-1, concatenated, are the
 * global batch, in order, so one rank and many ranks see the same samples.
 * Positions here index the caller's sample list (e.g. scenario_samples).
 */
#ifndef DMNSP_BATCHING_H
#define DMNSP_BATCHING_H

#include <stdint.h>

/* Fills ORDER (COUNT entries) with a permutation of 0 .. COUNT - 1: the
 * shuffle of (SEED, TASK, EPOCH) when SHUFFLE, else the identity. */
void batching_epoch_order(long count, uint64_t seed, int task, int epoch, int shuffle, long *order);

/* Number of global batches of BATCH_SIZE over COUNT samples (last partial). */
long batching_batch_count(long count, int batch_size);

/* Position range of global batch BATCH: [*begin, *begin + *size). */
void batching_batch_range(long count, int batch_size, long batch, long *begin, long *size);

/* Slice of a global batch of GLOBAL_SIZE samples taken by RANK of RANKS:
 * [*offset, *offset + *count) within the batch. The first GLOBAL_SIZE mod
 * RANKS ranks take one sample more; a rank may get zero samples. */
void batching_shard(long global_size, int rank, int ranks, long *offset, long *count);

/* Contiguous part of an evaluation list of COUNT samples for RANK of RANKS,
 * split the same way as batching_shard(). */
void batching_eval_shard(long count, int rank, int ranks, long *begin, long *size);

/* The counter-based generator behind the shuffle: a 64-bit value from KEY
 * and COUNTER (splitmix64 finaliser of their combination). */
uint64_t batching_random(uint64_t key, uint64_t counter);

#endif
