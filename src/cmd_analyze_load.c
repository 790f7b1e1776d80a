/* cmd_analyze_load: reads a run folder (checkpoint.h5, metrics.json,
 * config.yaml) into an analyze_run. */
#include "cmd_analyze.h"

#include "dmnsp/error.h"
#include "dmnsp/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

static int file_exists(const char *path)
{
    struct stat info;
    return stat(path, &info) == 0 && S_ISREG(info.st_mode);
}

static int read_text(const char *path, char **text, size_t *length)
{
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return dmnsp_fail("analyze: %s: cannot open: %s", path, strerror(errno));
    size_t capacity = 4096, used = 0;
    char *buffer = dmnsp_malloc(capacity, path);
    while (buffer != NULL) {
        if (used + 1 >= capacity) {
            char *grown = realloc(buffer, capacity * 2);
            if (grown == NULL) {
                free(buffer);
                buffer = NULL;
                dmnsp_fail("analyze: %s: out of memory", path);
                break;
            }
            buffer = grown;
            capacity *= 2;
        }
        size_t got = fread(buffer + used, 1, capacity - used - 1, f);
        used += got;
        if (got == 0)
            break;
    }
    int failed = ferror(f);
    fclose(f);
    if (buffer == NULL)
        return -1;
    if (failed) {
        free(buffer);
        return dmnsp_fail("analyze: %s: read error", path);
    }
    buffer[used] = '\0';
    *text = buffer;
    *length = used;
    return 0;
}

/* ---------------------------------------------------------------------------
 * YAML flattening (libyaml events): nested mappings become dotted keys.
 * ------------------------------------------------------------------------- */
static int add_setting(analyze_setting **settings, int *count, int *capacity, const char *key, const char *value)
{
    if (*count == *capacity) {
        int grown_capacity = *capacity ? *capacity * 2 : 64;
        analyze_setting *grown = realloc(*settings, (size_t)grown_capacity * sizeof **settings);
        if (grown == NULL)
            return dmnsp_fail("analyze: out of memory reading settings");
        *settings = grown;
        *capacity = grown_capacity;
    }
    snprintf((*settings)[*count].key, sizeof(*settings)[*count].key, "%s", key);
    snprintf((*settings)[*count].value, sizeof(*settings)[*count].value, "%s", value);
    (*count)++;
    return 0;
}

int analyze_flatten_yaml(const char *text, size_t length, const char *source, analyze_setting **settings, int *count)
{
    *settings = NULL;
    *count = 0;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return dmnsp_fail("analyze: %s: cannot start the YAML parser", source);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, length);

    /* prefix: the dotted path of the enclosing mappings; at each mapping
     * level the next scalar is a key when expecting_key is set. */
    char prefix[512] = "", key[256] = "", sequence[256] = "";
    size_t prefix_lengths[32];
    int depth = 0, expecting_key[32] = {0}, in_sequence = 0, capacity = 0, status = 0, done = 0;
    while (!done && status == 0) {
        yaml_event_t event;
        if (!yaml_parser_parse(&parser, &event)) {
            status = dmnsp_fail("analyze: %s:%zu:%zu: invalid YAML: %s", source, parser.problem_mark.line + 1,
                                parser.problem_mark.column + 1, parser.problem ? parser.problem : "parse error");
            break;
        }
        switch (event.type) {
        case YAML_MAPPING_START_EVENT:
            if (depth >= 31) {
                status = dmnsp_fail("analyze: %s: mappings nested deeper than 31 levels", source);
                break;
            }
            prefix_lengths[depth] = strlen(prefix);
            if (depth > 0) {
                size_t used = strlen(prefix);
                snprintf(prefix + used, sizeof prefix - used, "%s%s", used ? "." : "", key);
            }
            depth++;
            expecting_key[depth] = 1;
            break;
        case YAML_MAPPING_END_EVENT:
            depth--;
            if (depth >= 0)
                prefix[prefix_lengths[depth]] = '\0';
            if (depth > 0)
                expecting_key[depth] = 1;
            break;
        case YAML_SEQUENCE_START_EVENT:
            in_sequence = 1;
            snprintf(sequence, sizeof sequence, "[");
            break;
        case YAML_SEQUENCE_END_EVENT: {
            in_sequence = 0;
            size_t used = strlen(sequence);
            snprintf(sequence + used, sizeof sequence - used, "]");
            char full[800];
            snprintf(full, sizeof full, "%s%s%s", prefix, prefix[0] ? "." : "", key);
            status = add_setting(settings, count, &capacity, full, sequence);
            expecting_key[depth] = 1;
            break;
        }
        case YAML_SCALAR_EVENT: {
            const char *value = (const char *)event.data.scalar.value;
            if (in_sequence) {
                size_t used = strlen(sequence);
                snprintf(sequence + used, sizeof sequence - used, "%s%s", used > 1 ? ", " : "", value);
            } else if (depth > 0 && expecting_key[depth]) {
                snprintf(key, sizeof key, "%s", value);
                expecting_key[depth] = 0;
            } else if (depth > 0) {
                char full[800];
                snprintf(full, sizeof full, "%s%s%s", prefix, prefix[0] ? "." : "", key);
                status = add_setting(settings, count, &capacity, full, value);
                expecting_key[depth] = 1;
            }
            break;
        }
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        default:
            break;
        }
        yaml_event_delete(&event);
    }
    yaml_parser_delete(&parser);
    if (status != 0) {
        free(*settings);
        *settings = NULL;
        *count = 0;
    }
    return status;
}

const char *analyze_setting_value(const analyze_run *run, const char *key)
{
    for (int i = 0; i < run->setting_count; i++)
        if (strcmp(run->settings[i].key, key) == 0)
            return run->settings[i].value;
    return NULL;
}

/* ---------------------------------------------------------------------------
 * Accuracy arrays
 * ------------------------------------------------------------------------- */
static int allocate_metrics(analyze_run *run, int tasks)
{
    run->tasks = tasks;
    size_t n = tasks > 0 ? (size_t)tasks : 1;
    run->accuracy_matrix = dmnsp_malloc(n * n * sizeof(double), "accuracy matrix");
    double **arrays[5] = {&run->acc, &run->avg_acc, &run->forgetting, &run->bwt, &run->fwt};
    for (int i = 0; i < 5; i++)
        *arrays[i] = dmnsp_malloc(n * sizeof(double), "per-task metrics");
    run->nonfinite = dmnsp_calloc(n, sizeof(long), "per-task non-finite counts");
    if (!run->accuracy_matrix || !run->acc || !run->avg_acc || !run->forgetting || !run->bwt || !run->fwt ||
        !run->nonfinite)
        return -1;
    for (size_t i = 0; i < n * n; i++)
        run->accuracy_matrix[i] = NAN;
    for (size_t i = 0; i < n; i++)
        run->acc[i] = run->avg_acc[i] = run->forgetting[i] = run->bwt[i] = run->fwt[i] = NAN;
    return 0;
}

/* Fills avg_acc, forgetting, bwt and fwt of task rows 0..tasks-1 from the
 * accuracy matrix, acc and FORWARD (accuracy on task l before training it),
 * with the metrics module's definitions:
 *   forgetting[i] = mean over j < i of (max over l in j..i-1 of R[l][j]) - R[i][j]
 *   bwt[i]        = mean over j < l <= i of R[l][j] - R[j][j]
 *   fwt[i]        = mean over 1 <= l <= i of FORWARD[l]
 * all 0 for task 0. A metric that needs an unknown entry is NAN. */
static void derive_metrics(analyze_run *run, const double *forward)
{
    int n = run->tasks;
    const double *R = run->accuracy_matrix;
    double acc_sum = 0;
    for (int i = 0; i < n; i++) {
        acc_sum += run->acc[i];
        run->avg_acc[i] = acc_sum / (i + 1);

        double forgetting = 0, bwt = 0, fwt = 0;
        int pairs = 0;
        for (int j = 0; j < i; j++) {
            double best = R[(size_t)j * n + j];
            for (int l = j + 1; l < i; l++) {
                double value = R[(size_t)l * n + j];
                best = isnan(value) || isnan(best) ? NAN : fmax(best, value);
            }
            forgetting += best - R[(size_t)i * n + j];
            for (int l = j + 1; l <= i; l++) {
                bwt += R[(size_t)l * n + j] - R[(size_t)j * n + j];
                pairs++;
            }
        }
        for (int l = 1; l <= i; l++)
            fwt += forward != NULL ? forward[l] : NAN;
        if (!isfinite(R[(size_t)i * n + i])) {
            run->forgetting[i] = run->bwt[i] = run->fwt[i] = NAN;
        } else if (i == 0) {
            run->forgetting[i] = run->bwt[i] = run->fwt[i] = 0;
        } else {
            run->forgetting[i] = forgetting / i;
            run->bwt[i] = bwt / pairs;
            run->fwt[i] = fwt / i;
        }
    }
}

/* ---------------------------------------------------------------------------
 * checkpoint.h5
 * ------------------------------------------------------------------------- */
static int load_checkpoint(const char *path, analyze_run *run, double **forward)
{
    checkpoint_reader *reader = NULL;
    DMNSP_TRY(checkpoint_open(path, &reader));
    run->has_checkpoint = 1;
    run->shape = *checkpoint_get_shape(reader);
    run->checkpoint_tasks = checkpoint_task_count(reader);
    int tasks = run->checkpoint_tasks, layers = run->shape.vision_layers;
    run->max_layers = run->shape.vision_layers > run->shape.text_layers ? run->shape.vision_layers
                                                                        : run->shape.text_layers;
    size_t n_tasks = tasks > 0 ? (size_t)tasks : 1;
    run->stats = dmnsp_calloc(n_tasks * 2 * run->max_layers * 2, sizeof(param_stats), "parameter statistics");
    run->lambda = dmnsp_calloc(n_tasks * layers * layers, sizeof(float), "lambda");
    run->has_lambda = dmnsp_calloc(n_tasks, sizeof(int), "lambda flags");
    run->stored = dmnsp_calloc(n_tasks, sizeof(int), "stored task flags");
    *forward = dmnsp_malloc(n_tasks * sizeof(double), "forward accuracy");
    int status = (run->stats && run->lambda && run->has_lambda && run->stored && *forward) ? 0 : -1;
    if (status == 0)
        status = allocate_metrics(run, tasks);

    static const char *const tensors[2] = {"down_w", "up_w"};
    for (int t = 0; status == 0 && t < tasks; t++) {
        (*forward)[t] = NAN;
        run->stored[t] = checkpoint_task_stored(reader, t);
        if (!run->stored[t])
            continue;
        for (int modality = 0; status == 0 && modality < 2; modality++) {
            int blocks = modality == CLIP_VISUAL ? run->shape.vision_layers : run->shape.text_layers;
            for (int b = 0; status == 0 && b < blocks; b++)
                for (int k = 0; status == 0 && k < 2; k++)
                    status = checkpoint_read_stats(reader, t, (clip_modality)modality, b, tensors[k],
                                                   analyze_stats(run, t, modality, b, k));
        }
        if (status == 0)
            status = checkpoint_read_lambda(reader, t, run->lambda + (size_t)t * layers * layers,
                                            &run->has_lambda[t]);
        checkpoint_task_metrics metrics;
        if (status == 0)
            status = checkpoint_read_metrics(reader, t, &metrics);
        if (status == 0) {
            for (int j = 0; j < metrics.row_length && j < tasks; j++)
                run->accuracy_matrix[(size_t)t * tasks + j] = metrics.accuracy_row[j];
            run->acc[t] = metrics.accuracy;
            run->nonfinite[t] = metrics.nonfinite_count;
            (*forward)[t] = metrics.forward_accuracy;
            free(metrics.accuracy_row);
        }
    }
    if (status == 0 && tasks > 0) {
        derive_metrics(run, *forward);
        run->metrics_source = "checkpoint.h5";
    }

    /* Settings from the checkpoint's config attribute, unless config.yaml wins later. */
    const char *config_text = checkpoint_config_text(reader);
    if (status == 0 && config_text != NULL && config_text[0] != '\0')
        status = analyze_flatten_yaml(config_text, strlen(config_text), path, &run->settings, &run->setting_count);
    checkpoint_close(reader);
    return status;
}

/* ---------------------------------------------------------------------------
 * metrics.json (read by the metrics module): its task lines replace the rows
 * derived from the checkpoint.
 * ------------------------------------------------------------------------- */

/* Grows the metric arrays to TASKS rows, keeping what the checkpoint gave. */
static int grow_metrics(analyze_run *run, int tasks)
{
    if (tasks <= run->tasks)
        return 0;
    analyze_run old = *run;
    DMNSP_TRY(allocate_metrics(run, tasks));
    for (int i = 0; i < old.tasks; i++) {
        for (int j = 0; j < old.tasks; j++)
            run->accuracy_matrix[(size_t)i * tasks + j] = old.accuracy_matrix[(size_t)i * old.tasks + j];
        run->acc[i] = old.acc[i];
        run->avg_acc[i] = old.avg_acc[i];
        run->forgetting[i] = old.forgetting[i];
        run->bwt[i] = old.bwt[i];
        run->fwt[i] = old.fwt[i];
        run->nonfinite[i] = old.nonfinite[i];
    }
    free(old.accuracy_matrix);
    free(old.acc);
    free(old.avg_acc);
    free(old.forgetting);
    free(old.bwt);
    free(old.fwt);
    free(old.nonfinite);
    return 0;
}

static int load_metrics(const char *path, analyze_run *run)
{
    metrics_file file;
    if (metrics_read_json(path, &file) != 0)
        return dmnsp_fail_prefix("analyze");

    int status = grow_metrics(run, file.line_count);
    for (int i = 0; status == 0 && i < file.line_count; i++) {
        const metrics_file_line *line = &file.lines[i];
        int t = line->task;
        run->acc[t] = line->acc;
        run->avg_acc[t] = line->avg_acc;
        run->forgetting[t] = line->forgetting;
        run->bwt[t] = line->bwt;
        run->fwt[t] = line->fwt;
        run->nonfinite[t] = line->nonfinite;
        for (int j = 0; j < line->per_task_count && j < run->tasks; j++)
            run->accuracy_matrix[(size_t)t * run->tasks + j] = line->acc_per_task[j];
    }
    if (status == 0 && file.has_summary) {
        run->finished = 1;
        run->last = file.last;
        run->avg = file.avg;
        run->avg_forgetting = file.avg_forgetting;
        run->wall_seconds = file.wall_seconds;
        run->ranks = file.ranks;
        snprintf(run->dataset, sizeof run->dataset, "%.63s", file.dataset);
        snprintf(run->method, sizeof run->method, "%.63s", file.method);
    }
    if (status == 0 && file.line_count > 0)
        run->metrics_source = run->has_checkpoint && run->checkpoint_tasks > file.line_count
                                  ? "metrics.json (checkpoint.h5 for later tasks)"
                                  : "metrics.json";
    metrics_file_free(&file);
    return status;
}

/* ---------------------------------------------------------------------------
 * The run folder
 * ------------------------------------------------------------------------- */
int analyze_load_run(const char *run_dir, analyze_run *run)
{
    memset(run, 0, sizeof *run);
    run->last = run->avg = run->avg_forgetting = run->wall_seconds = NAN;
    snprintf(run->dir, sizeof run->dir, "%s", run_dir);
    size_t length = strlen(run->dir);
    while (length > 1 && run->dir[length - 1] == '/')
        run->dir[--length] = '\0';
    const char *slash = strrchr(run->dir, '/');
    snprintf(run->name, sizeof run->name, "%.255s", slash != NULL ? slash + 1 : run->dir);

    struct stat info;
    if (stat(run->dir, &info) != 0 || !S_ISDIR(info.st_mode))
        return dmnsp_fail("analyze: %s: run folder not found", run->dir);

    char checkpoint_path[4200], metrics_path[4200], config_path[4200];
    snprintf(checkpoint_path, sizeof checkpoint_path, "%s/checkpoint.h5", run->dir);
    snprintf(metrics_path, sizeof metrics_path, "%s/metrics.json", run->dir);
    snprintf(config_path, sizeof config_path, "%s/config.yaml", run->dir);
    int have_checkpoint = file_exists(checkpoint_path), have_metrics = file_exists(metrics_path);
    if (!have_checkpoint && !have_metrics)
        return dmnsp_fail("analyze: %s: neither checkpoint.h5 nor metrics.json found in the run folder", run->dir);

    double *forward = NULL;
    int status = 0;
    if (have_checkpoint)
        status = load_checkpoint(checkpoint_path, run, &forward);
    free(forward);
    if (status == 0 && have_metrics)
        status = load_metrics(metrics_path, run);

    /* config.yaml is the resolved config the run started with; it replaces
     * the checkpoint's copy when both exist. */
    if (status == 0 && file_exists(config_path)) {
        char *text = NULL;
        size_t text_length = 0;
        analyze_setting *settings = NULL;
        int count = 0;
        status = read_text(config_path, &text, &text_length);
        if (status == 0)
            status = analyze_flatten_yaml(text, text_length, config_path, &settings, &count);
        free(text);
        if (status == 0) {
            free(run->settings);
            run->settings = settings;
            run->setting_count = count;
        }
    }
    if (status == 0 && run->method[0] == '\0' && analyze_setting_value(run, "method") != NULL)
        snprintf(run->method, sizeof run->method, "%.63s", analyze_setting_value(run, "method"));
    if (status == 0 && run->dataset[0] == '\0' && analyze_setting_value(run, "dataset") != NULL)
        snprintf(run->dataset, sizeof run->dataset, "%.63s", analyze_setting_value(run, "dataset"));
    if (status != 0)
        analyze_free_run(run);
    return status;
}

void analyze_free_run(analyze_run *run)
{
    free(run->stats);
    free(run->lambda);
    free(run->has_lambda);
    free(run->stored);
    free(run->accuracy_matrix);
    free(run->acc);
    free(run->avg_acc);
    free(run->forgetting);
    free(run->bwt);
    free(run->fwt);
    free(run->nonfinite);
    free(run->settings);
    char dir[sizeof run->dir], name[sizeof run->name];
    memcpy(dir, run->dir, sizeof dir);
    memcpy(name, run->name, sizeof name);
    memset(run, 0, sizeof *run);
    memcpy(run->dir, dir, sizeof dir);
    memcpy(run->name, name, sizeof name);
}
