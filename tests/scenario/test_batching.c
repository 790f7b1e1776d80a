/* Batching tests: the epoch order is a seeded permutation, batches cover it
 * with a partial last batch, and under MPI the shards of all ranks,
 * concatenated in rank order, equal the one-rank batch. */
#include "dmnsp/batching.h"
#include "test_util.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_permutation(const long *order, long count)
{
    char *seen = calloc((size_t)count, 1);
    int ok = 1;
    for (long i = 0; i < count && ok; i++) {
        if (order[i] < 0 || order[i] >= count || seen[order[i]])
            ok = 0;
        else
            seen[order[i]] = 1;
    }
    free(seen);
    return ok;
}

static void test_epoch_order(void)
{
    enum { COUNT = 1000 };
    long *a = malloc(sizeof(long) * COUNT), *b = malloc(sizeof(long) * COUNT);
    batching_epoch_order(COUNT, 32, 1, 0, 1, a);
    CHECK(is_permutation(a, COUNT));
    batching_epoch_order(COUNT, 32, 1, 0, 1, b);
    CHECK(memcmp(a, b, sizeof(long) * COUNT) == 0);

    /* Another epoch, task or seed gives another order. */
    batching_epoch_order(COUNT, 32, 1, 1, 1, b);
    CHECK(is_permutation(b, COUNT));
    CHECK(memcmp(a, b, sizeof(long) * COUNT) != 0);
    batching_epoch_order(COUNT, 32, 2, 0, 1, b);
    CHECK(memcmp(a, b, sizeof(long) * COUNT) != 0);
    batching_epoch_order(COUNT, 33, 1, 0, 1, b);
    CHECK(memcmp(a, b, sizeof(long) * COUNT) != 0);

    /* The shuffle moves most elements. */
    long fixed = 0;
    for (long i = 0; i < COUNT; i++)
        fixed += a[i] == i;
    CHECK(fixed < 20);

    /* Each position is roughly uniform: over many seeds, element 0 lands in
     * the first half about half of the time. */
    int first_half = 0;
    for (uint64_t seed = 0; seed < 400; seed++) {
        batching_epoch_order(10, seed, 0, 0, 1, a);
        for (int i = 0; i < 5; i++)
            first_half += a[i] == 0;
    }
    CHECK(first_half > 150);
    CHECK(first_half < 250);

    /* Without shuffling: file order. */
    batching_epoch_order(7, 32, 0, 0, 0, a);
    for (long i = 0; i < 7; i++)
        CHECK_EQ_INT(a[i], i);
    free(a);
    free(b);
}

static void test_batches(void)
{
    CHECK_EQ_INT(batching_batch_count(300, 128), 3);
    CHECK_EQ_INT(batching_batch_count(256, 128), 2);
    CHECK_EQ_INT(batching_batch_count(0, 128), 0);
    long begin = -1, size = -1;
    batching_batch_range(300, 128, 2, &begin, &size);
    CHECK_EQ_INT(begin, 256);
    CHECK_EQ_INT(size, 44);
    batching_batch_range(300, 128, 1, &begin, &size);
    CHECK_EQ_INT(begin, 128);
    CHECK_EQ_INT(size, 128);

    long offset = -1, count = -1;
    batching_shard(10, 0, 3, &offset, &count);
    CHECK_EQ_INT(offset, 0);
    CHECK_EQ_INT(count, 4);
    batching_shard(10, 2, 3, &offset, &count);
    CHECK_EQ_INT(offset, 7);
    CHECK_EQ_INT(count, 3);
    batching_shard(2, 2, 3, &offset, &count);
    CHECK_EQ_INT(offset, 2);
    CHECK_EQ_INT(count, 0);
}

/* Every rank takes its shard of every global batch of a shuffled epoch;
 * the gathered shards must equal the batch one rank computes alone. */
static void test_shards_reassemble_batches(int rank, int ranks)
{
    const long count = 301;
    const int batch_size = 64;
    long *order = malloc(sizeof(long) * (size_t)count);
    batching_epoch_order(count, 32, 3, 2, 1, order);
    long *gathered = malloc(sizeof(long) * (size_t)batch_size);
    int *counts = malloc(sizeof(int) * (size_t)ranks);
    int *displacements = malloc(sizeof(int) * (size_t)ranks);
    long mismatches = 0;

    for (long b = 0; b < batching_batch_count(count, batch_size); b++) {
        long begin, size;
        batching_batch_range(count, batch_size, b, &begin, &size);
        long offset, shard;
        batching_shard(size, rank, ranks, &offset, &shard);
        for (int r = 0; r < ranks; r++) {
            long r_offset, r_count;
            batching_shard(size, r, ranks, &r_offset, &r_count);
            counts[r] = (int)r_count;
            displacements[r] = (int)r_offset;
        }
        MPI_Allgatherv(order + begin + offset, (int)shard, MPI_LONG, gathered, counts, displacements, MPI_LONG,
                       MPI_COMM_WORLD);
        for (long i = 0; i < size; i++)
            mismatches += gathered[i] != order[begin + i];
    }
    CHECK_EQ_INT(mismatches, 0);

    /* Evaluation shards cover the list once, in order. */
    long begin, size, covered = 0, first = 0;
    batching_eval_shard(1003, rank, ranks, &begin, &size);
    MPI_Allreduce(&size, &covered, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    CHECK_EQ_INT(covered, 1003);
    MPI_Exscan(&size, &first, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        first = 0;
    CHECK_EQ_INT(begin, first);

    free(order);
    free(gathered);
    free(counts);
    free(displacements);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank = 0, ranks = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);

    test_epoch_order();
    test_batches();
    test_shards_reassemble_batches(rank, ranks);

    test_sum_failures_over_ranks();
    MPI_Finalize();
    return rank == 0 ? test_finish("test_batching") : (test_failures ? 1 : 0);
}
