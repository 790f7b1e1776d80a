/* experiment_setup: building a run from its config — datasets, scenario,
 * model, vocabulary, prompts, trainer and null-space state. */
#include "experiment_internal.h"

#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/log.h"
#include "dmnsp/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int experiment_method_of(const char *name, experiment_method *method)
{
    memset(method, 0, sizeof *method);
    if (strcmp(name, "zeroshot") == 0)
        return 0;
    method->trains = 1;
    if (strcmp(name, "finetune") == 0)
        return 0;
    DMNSP_TRY(nullspace_variant_for_method(name, &method->variant));
    method->projects_visual = 1;
    method->projects_text = strcmp(name, "DMNSP-both") == 0;
    return 0;
}

/* ---- data -------------------------------------------------------------- */

static int open_data(experiment *e)
{
    const config *cfg = e->cfg;
    const char *kind = config_get_string(cfg, "dataset");
    const char *root = config_get_string(cfg, "dataset_root");
    const char *names = config_get_string(cfg, "class_names");

    if (root[0] == '\0' && strcmp(kind, "fashionmnist") != 0)
        return dmnsp_fail("dataset_root is not set: pass dataset_root=/path/to/the/%s/files", kind);
    DMNSP_TRY(dataset_open(kind, root, 1, names, &e->train_set));
    DMNSP_TRY(dataset_open(kind, root, 0, names, &e->test_set));

    int *order = NULL, order_length = 0;
    const char *order_path = config_get_string(cfg, "class_order");
    if (order_path[0] != '\0')
        DMNSP_TRY(config_read_int_list(order_path, "class_order", &order, &order_length));
    int status = scenario_init(&e->sc, order, order_length, dataset_class_count(e->train_set),
                               (int)config_get_int(cfg, "initial_increment"), (int)config_get_int(cfg, "increment"),
                               (int)config_get_int(cfg, "max_tasks"));
    free(order);
    if (status != 0)
        return dmnsp_fail_prefix("class order %s", order_path[0] ? order_path : "(dataset order)");

    int tasks = e->sc.task_count;
    e->train_samples = calloc((size_t)tasks, sizeof *e->train_samples);
    e->test_samples = calloc((size_t)tasks, sizeof *e->test_samples);
    if (e->train_samples == NULL || e->test_samples == NULL)
        return dmnsp_fail("out of memory for the task sample lists");
    long train_limit = config_get_int(cfg, "train_per_class");
    long test_limit = config_get_int(cfg, "test_per_class");
    for (int t = 0; t < tasks; t++) {
        DMNSP_TRY(scenario_task_samples(&e->sc, dataset_labels(e->train_set), dataset_size(e->train_set), t, t,
                                        train_limit, &e->train_samples[t]));
        DMNSP_TRY(scenario_task_samples(&e->sc, dataset_labels(e->test_set), dataset_size(e->test_set), t, t,
                                        test_limit, &e->test_samples[t]));
        if (e->train_samples[t].count == 0 && e->method.trains)
            return dmnsp_fail("task %d has no training images in %s", t, dataset_root(e->train_set));
        int classes = e->sc.task_begin[t + 1] - e->sc.task_begin[t];
        if (classes > e->max_task_classes)
            e->max_task_classes = classes;
    }
    return 0;
}

/* ---- model ------------------------------------------------------------- */

static void apply_adapter_settings(const config *cfg, clip_config *model_config)
{
    model_config->adapter_bottleneck = (int)config_get_int(cfg, "adapter.bottleneck");
    model_config->adapter_scale = (float)config_get_float(cfg, "adapter.scale");
    model_config->adapter_dropout = (float)config_get_float(cfg, "adapter.dropout");
}

int experiment_load_model(const config *cfg, clip_config *model_config, clip_model **model)
{
    *model = NULL;
    memset(model_config, 0, sizeof *model_config);
    const char *preset = config_get_string(cfg, "model_name");
    const char *weights_path = config_get_string(cfg, "weights");
    uint64_t seed = (uint64_t)config_get_int(cfg, "seed");
    int auto_preset = preset[0] == '\0' || strcmp(preset, "auto") == 0;

    if (weights_path[0] == '\0') {
        if (auto_preset)
            return dmnsp_fail("model_name=%s needs weights=FILE.safetensors to take the architecture from; "
                              "or name a preset (%s)",
                              preset[0] ? preset : "\"\"", clip_preset_names());
        DMNSP_TRY(clip_preset(preset, model_config));
        apply_adapter_settings(cfg, model_config);
        DMNSP_TRY(clip_model_create(model_config, model));
        int status = clip_model_init_random(*model, seed);
        if (status == 0)
            status = clip_model_init_adapters(*model, seed);
        if (status != 0) {
            clip_model_free(*model);
            *model = NULL;
            return -1;
        }
        log_info("model: %s preset with seeded random frozen weights (seed %llu)", preset, (unsigned long long)seed);
        return 0;
    }

    weights_file *file = NULL;
    DMNSP_TRY(weights_open(weights_path, &file));
    apply_adapter_settings(cfg, model_config);
    int status = weights_infer_config(file, model_config);
    if (status == 0 && !auto_preset)
        status = weights_check_preset(file, model_config, preset);
    if (status == 0)
        status = clip_model_create(model_config, model);
    if (status == 0)
        status = weights_read(file, model_config, clip_model_frozen(*model), clip_model_adapters(*model));
    int has_adapters = status == 0 && weights_has_adapters(file);
    weights_close(file);
    if (status == 0 && !has_adapters)
        status = clip_model_init_adapters(*model, seed);
    if (status != 0) {
        clip_model_free(*model);
        *model = NULL;
        return -1;
    }
    log_info("model: %s (%s naming inferred from the file), adapters %s", weights_path,
             auto_preset ? "architecture" : preset, has_adapters ? "from the file" : "freshly initialised");
    return 0;
}

static int open_prompts(experiment *e)
{
    const config *cfg = e->cfg;
    const char *vocab = config_get_string(cfg, "vocab");
    DMNSP_TRY(tokenizer_load(vocab, &e->vocabulary));
    const char *random_weights = config_get_string(cfg, "weights")[0] == '\0'
                                     ? " (a preset with random weights has the byte-level vocabulary: set vocab "
                                       "to \"\", or give weights= of a released CLIP for its BPE vocabulary)"
                                     : "";
    if (tokenizer_vocab_size(e->vocabulary) != e->model_config.vocab_size)
        return dmnsp_fail("vocabulary %s has %d token ids but the model's token embedding has %d rows; use the "
                          "vocabulary the weights were trained with%s",
                          vocab[0] ? vocab : "(byte level)", tokenizer_vocab_size(e->vocabulary),
                          e->model_config.vocab_size, random_weights);

    int classes = e->sc.class_count;
    const char **names = malloc((size_t)dataset_class_count(e->train_set) * sizeof *names);
    if (names == NULL)
        return dmnsp_fail("out of memory for class names");
    for (int c = 0; c < dataset_class_count(e->train_set); c++)
        names[c] = dataset_class_name(e->train_set, c);
    char **prompts = NULL;
    int status = scenario_prompts(&e->sc, names, config_get_string(cfg, "prompt_template"), 0, classes, &prompts);
    free(names);
    DMNSP_TRY(status);

    int context = e->model_config.context_length;
    e->prompt_tokens = malloc((size_t)classes * (size_t)context * sizeof *e->prompt_tokens);
    if (e->prompt_tokens == NULL)
        status = dmnsp_fail("out of memory for prompt tokens");
    else
        status = tokenizer_encode_batch(e->vocabulary, (const char *const *)prompts, classes, context, 0,
                                        e->prompt_tokens);
    if (status == 0)
        log_info("prompts: %d classes, e.g. \"%s\"; vocabulary %s", classes, prompts[0],
                 tokenizer_description(e->vocabulary));
    scenario_free_prompts(prompts, classes);
    return status;
}

/* ---- training and null spaces ----------------------------------------- */

#define GIB (1024.0 * 1024.0 * 1024.0)

/* Reads the first number of FILE (a cgroup file such as memory.max), or
 * returns 0 when FILE is missing or contains "max". */
static double read_first_number(const char *file)
{
    FILE *f = fopen(file, "r");
    double value = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%lf", &value) != 1)
        value = 0;
    fclose(f);
    return value;
}

/* Bytes this process can still allocate on its node: MemAvailable of
 * /proc/meminfo, lowered to the free part of a cgroup v2 memory.max (a
 * batch system's per-job limit) when there is one. 0 when unknown. */
static double available_memory_bytes(void)
{
    double available = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f != NULL) {
        char line[256];
        while (fgets(line, sizeof line, f) != NULL) {
            double kib = 0;
            if (sscanf(line, "MemAvailable: %lf kB", &kib) == 1)
                available = kib * 1024.0;
        }
        fclose(f);
    }

    /* "0::/path" is the process's cgroup v2 */
    char group[512] = "";
    f = fopen("/proc/self/cgroup", "r");
    if (f != NULL) {
        char line[600];
        while (fgets(line, sizeof line, f) != NULL)
            if (strncmp(line, "0::", 3) == 0 && sscanf(line + 3, "%511s", group) != 1)
                group[0] = '\0';
        fclose(f);
    }
    if (group[0] == '/') {
        char file[640];
        snprintf(file, sizeof file, "/sys/fs/cgroup%s/memory.max", group);
        double limit = read_first_number(file);
        snprintf(file, sizeof file, "/sys/fs/cgroup%s/memory.current", group);
        double used = read_first_number(file);
        if (limit > 0 && (available == 0 || limit - used < available))
            available = limit > used ? limit - used : 1;
    }
    return available;
}

/* Logs the activation memory a rank is about to allocate and fails, before
 * allocating it, when the ranks of this node would need more than the node
 * has available. Every rank of a node computes the same numbers. */
static int check_activation_memory(const experiment *e, const train_config *tc)
{
    const clip_config *mc = &e->model_config;
    double need = (double)clip_workspace_required_bytes(mc, tc->max_local_images, tc->max_classes, 1,
                                                        tc->recompute_blocks);
    double available = available_memory_bytes();
    int local = dist_ranks_on_node();
    long batch = config_get_int(e->cfg, "batch_size");
    log_info("activation memory: %.2f GiB per rank for %d images (batch_size %ld over %d rank(s)), "
             "recompute_activations %s; %.1f GiB available on this node for %d rank(s)",
             need / GIB, tc->max_local_images, batch, e->ranks, tc->recompute_blocks ? "true" : "false",
             available / GIB, local);
    if (available <= 0 || need * local <= available)
        return 0;
    if (tc->recompute_blocks)
        return dmnsp_fail("batch_size %ld over %d rank(s) needs %.1f GiB of activation memory per rank, but this node "
                          "has %.1f GiB available for %d rank(s); lower batch_size or run fewer ranks per node",
                          batch, e->ranks, need / GIB, available / GIB, local);
    double need_recompute =
        (double)clip_workspace_required_bytes(mc, tc->max_local_images, tc->max_classes, 1, 1);
    return dmnsp_fail("batch_size %ld over %d rank(s) needs %.1f GiB of activation memory per rank, but this node has "
                      "%.1f GiB available for %d rank(s); set recompute_activations=true (%.1f GiB per rank), "
                      "lower batch_size or run fewer ranks per node",
                      batch, e->ranks, need / GIB, available / GIB, local, need_recompute / GIB);
}

static int open_trainer(experiment *e)
{
    const config *cfg = e->cfg;
    /* Evaluation and basis batches run in chunks of the training shard, so
     * activation memory is sized by the training batch alone. */
    long batch = config_get_int(cfg, "batch_size");
    e->max_local_images = (int)((batch + e->ranks - 1) / e->ranks);

    train_config tc = train_default_config();
    tc.max_local_images = e->max_local_images;
    tc.max_classes = e->sc.class_count;
    tc.recompute_blocks = config_get_bool(cfg, "recompute_activations");
    tc.label_smoothing = (float)config_get_float(cfg, "ls");
    tc.adamw.weight_decay = config_get_float(cfg, "weight_decay");
    tc.dropout_seed = e->seed;
    tc.comm = MPI_COMM_WORLD;
    DMNSP_TRY(check_activation_memory(e, &tc));
    DMNSP_TRY(trainer_create(e->model, &tc, &e->trainer));

    int size = e->model_config.image_resolution;
    size_t pixels = (size_t)e->max_local_images * 3 * (size_t)size * (size_t)size;
    e->images = dmnsp_malloc(pixels * sizeof *e->images, "the image batch");
    e->indices = dmnsp_malloc((size_t)e->max_local_images * sizeof *e->indices, "batch indices");
    e->labels = dmnsp_malloc((size_t)e->max_local_images * sizeof *e->labels, "batch labels");
    e->predictions = dmnsp_malloc((size_t)e->max_local_images * sizeof *e->predictions, "predictions");
    e->text_features = dmnsp_malloc((size_t)e->sc.class_count * (size_t)e->model_config.embed_dim *
                                        sizeof *e->text_features,
                                    "text features");
    e->image_features = dmnsp_malloc((size_t)e->max_local_images * (size_t)e->model_config.embed_dim *
                                         sizeof *e->image_features,
                                     "image features");
    if (!e->images || !e->indices || !e->labels || !e->predictions || !e->text_features || !e->image_features)
        return -1;
    return 0;
}

static int nullspace_options_from_config(const experiment *e, int blocks, int width, nullspace_options *options)
{
    const config *cfg = e->cfg;
    nullspace_options_default(options, blocks, width, e->model_config.adapter_bottleneck);
    options->top_select = (int)config_get_int(cfg, "top_select");
    options->top_k_ratio = config_get_float(cfg, "top_k_ratio");
    options->lambda_scale = config_get_float(cfg, "lambda_scale");
    options->projection_normalize = config_get_bool(cfg, "projection_normalize");
    options->variant = e->method.variant;
    DMNSP_TRY(nullspace_parse_solver(config_get_string(cfg, "nullspace.solver"), &options->solver));
    DMNSP_TRY(nullspace_parse_union(config_get_string(cfg, "nullspace.union"), &options->union_mode));
    DMNSP_TRY(nullspace_parse_lambda_apply(config_get_string(cfg, "lambda_apply"), &options->lambda_apply));
    if (options->top_select >= width)
        return dmnsp_fail("top_select=%d must be less than %d, the width of the encoder's adapter outputs whose "
                          "covariance it decomposes",
                          options->top_select, width);
    return nullspace_options_validate(options);
}

static int open_nullspace(experiment *e)
{
    if (!e->method.projects_visual)
        return 0;
    const clip_config *mc = &e->model_config;
    long basis_rows = config_get_int(e->cfg, "nullspace.basis_batch_size") / e->ranks + 1;

    nullspace_options options;
    DMNSP_TRY(nullspace_options_from_config(e, mc->vision_layers, mc->vision_width, &options));
    DMNSP_TRY(nullspace_state_create(&options, &e->visual_state));
    DMNSP_TRY(nullspace_collector_create(&options, nullspace_solver_needs_rows(&options, e->ranks),
                                         basis_rows * clip_vision_tokens(mc), &e->visual_collector));
    log_info("null space: %s solver for %d visual blocks of width %d, top_select %d, top_k_ratio %g, "
             "lambda_scale %g, union %s, lambda_apply %s, projection_normalize %s",
             nullspace_solver_name(nullspace_resolve_solver(&options, e->ranks)), mc->vision_layers,
             mc->vision_width, options.top_select, options.top_k_ratio, options.lambda_scale,
             config_get_string(e->cfg, "nullspace.union"), config_get_string(e->cfg, "lambda_apply"),
             options.projection_normalize ? "true" : "false");

    if (!e->method.projects_text)
        return 0;
    DMNSP_TRY(nullspace_options_from_config(e, mc->text_layers, mc->text_width, &options));
    DMNSP_TRY(nullspace_state_create(&options, &e->text_state));
    DMNSP_TRY(nullspace_collector_create(&options, nullspace_solver_needs_rows(&options, e->ranks),
                                         (long)e->max_task_classes * mc->context_length, &e->text_collector));
    return 0;
}

int experiment_open(const config *cfg, experiment *e)
{
    memset(e, 0, sizeof *e);
    e->cfg = cfg;
    e->rank = dist_rank();
    e->ranks = dist_size();
    e->start_time = log_now();
    e->seed = (uint64_t)config_get_int(cfg, "seed");
    DMNSP_TRY(experiment_method_of(config_get_string(cfg, "method"), &e->method));

    DMNSP_TRY(open_data(e));
    DMNSP_TRY(experiment_load_model(cfg, &e->model_config, &e->model));
    DMNSP_TRY(open_prompts(e));
    DMNSP_TRY(open_trainer(e));
    DMNSP_TRY(open_nullspace(e));
    return metrics_init(&e->metrics, e->sc.task_count);
}

void experiment_close(experiment *e)
{
    for (int t = 0; t < e->sc.task_count; t++) {
        if (e->train_samples != NULL)
            scenario_samples_free(&e->train_samples[t]);
        if (e->test_samples != NULL)
            scenario_samples_free(&e->test_samples[t]);
    }
    free(e->train_samples);
    free(e->test_samples);
    experiment_progress_free(&e->resumed);
    nullspace_collector_destroy(e->visual_collector);
    nullspace_collector_destroy(e->text_collector);
    nullspace_state_destroy(e->visual_state);
    nullspace_state_destroy(e->text_state);
    trainer_free(e->trainer);
    free(e->images);
    free(e->indices);
    free(e->labels);
    free(e->predictions);
    free(e->text_features);
    free(e->image_features);
    free(e->prompt_tokens);
    tokenizer_free(e->vocabulary);
    clip_model_free(e->model);
    metrics_free(&e->metrics);
    scenario_free(&e->sc);
    dataset_close(e->train_set);
    dataset_close(e->test_set);
    memset(e, 0, sizeof *e);
}
