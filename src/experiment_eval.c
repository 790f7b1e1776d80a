/* experiment_eval: accuracy of the current adapters on one task's test set,
 * sharded over ranks with the counts summed. */
#include "experiment_internal.h"

#include "dmnsp/batching.h"
#include "dmnsp/error.h"

#include <mpi.h>

int experiment_text_features(experiment *e, int n_classes)
{
    return train_encode_class_texts(e->trainer, e->prompt_tokens, n_classes, e->text_features);
}

int experiment_evaluate_task(experiment *e, int task, int n_classes, long *correct, long *total)
{
    const scenario_samples *samples = &e->test_samples[task];
    long begin = 0, count = 0;
    batching_eval_shard(samples->count, e->rank, e->ranks, &begin, &count);

    long counts[3] = {0, 0, 0}; /* correct, total, failed */
    int size = e->model_config.image_resolution;
    for (long done = 0; done < count && counts[2] == 0; done += e->max_local_images) {
        int n = (int)(count - done < e->max_local_images ? count - done : e->max_local_images);
        for (int i = 0; i < n; i++) {
            e->indices[i] = samples->indices[begin + done + i];
            e->labels[i] = samples->labels[begin + done + i];
        }
        if (dataset_load_batch(e->test_set, e->indices, n, size, e->images) != 0 ||
            train_predict(e->trainer, e->images, n, e->text_features, n_classes, e->predictions) != 0) {
            counts[2] = 1;
            break;
        }
        for (int i = 0; i < n; i++)
            counts[0] += e->predictions[i] == e->labels[i];
        counts[1] += n;
    }

    /* The failure flag rides along, so a failing rank never strands others. */
    long sums[3];
    if (MPI_Allreduce(counts, sums, 3, MPI_LONG, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        return dmnsp_fail("MPI_Allreduce of evaluation counts failed");
    if (sums[2] != 0) {
        if (counts[2] == 0)
            dmnsp_fail_secondary("evaluation of task %d stopped because another rank failed", task);
        return -1;
    }
    *correct = sums[0];
    *total = sums[1];
    return 0;
}
