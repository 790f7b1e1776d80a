/* batching: seeded epoch order, global batches and shards (see
 * include/dmnsp/batching.h). */
#include "dmnsp/batching.h"

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t batching_random(uint64_t key, uint64_t counter)
{
    return mix64(key + (counter + 1) * 0x9e3779b97f4a7c15ull);
}

/* Uniform integer in 0 .. bound - 1 for position COUNTER, by rejection so
 * that no value is favoured. */
static uint64_t uniform_below(uint64_t key, uint64_t counter, uint64_t bound)
{
    uint64_t threshold = (0 - bound) % bound;
    for (uint64_t attempt = 0;; attempt++) {
        uint64_t value = batching_random(key ^ (attempt * 0xd1b54a32d192ed03ull), counter);
        if (value >= threshold)
            return value % bound;
    }
}

void batching_epoch_order(long count, uint64_t seed, int task, int epoch, int shuffle, long *order)
{
    for (long i = 0; i < count; i++)
        order[i] = i;
    if (!shuffle || count < 2)
        return;
    uint64_t key = mix64(mix64(mix64(seed) ^ (uint64_t)(uint32_t)task) ^ ((uint64_t)(uint32_t)epoch << 32));
    for (long i = count - 1; i > 0; i--) {
        long j = (long)uniform_below(key, (uint64_t)i, (uint64_t)i + 1);
        long swap = order[i];
        order[i] = order[j];
        order[j] = swap;
    }
}

long batching_batch_count(long count, int batch_size)
{
    if (count <= 0 || batch_size <= 0)
        return 0;
    return (count + batch_size - 1) / batch_size;
}

void batching_batch_range(long count, int batch_size, long batch, long *begin, long *size)
{
    *begin = batch * (long)batch_size;
    if (*begin > count)
        *begin = count;
    long end = *begin + batch_size;
    *size = (end > count ? count : end) - *begin;
}

void batching_shard(long global_size, int rank, int ranks, long *offset, long *count)
{
    long base = global_size / ranks;
    long extra = global_size % ranks;
    *count = base + (rank < extra ? 1 : 0);
    *offset = rank * base + (rank < extra ? rank : extra);
}

void batching_eval_shard(long count, int rank, int ranks, long *begin, long *size)
{
    batching_shard(count, rank, ranks, begin, size);
}
