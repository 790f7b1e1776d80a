/* cmd_analyze_plot: gnuplot scripts (data inline, kept in OUT/plots/ so a
 * researcher can restyle and rerun them) and the PNGs they draw. */
#include "cmd_analyze.h"

#include "dmnsp/error.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

static const char *const modality_names[2] = {"visual", "text"};
static const char *const tensor_names[2] = {"down_w", "up_w"};

int analyze_list_add(analyze_file_list *list, const char *name)
{
    char **grown = realloc(list->names, (size_t)(list->count + 1) * sizeof *grown);
    if (grown == NULL)
        return dmnsp_fail("analyze: out of memory");
    list->names = grown;
    list->names[list->count] = strdup(name);
    if (list->names[list->count] == NULL)
        return dmnsp_fail("analyze: out of memory");
    list->count++;
    return 0;
}

void analyze_list_free(analyze_file_list *list)
{
    for (int i = 0; i < list->count; i++)
        free(list->names[i]);
    free(list->names);
    list->names = NULL;
    list->count = 0;
}

/* ---------------------------------------------------------------------------
 * Script pieces
 * ------------------------------------------------------------------------- */

/* A gnuplot single-quoted string: a quote inside is doubled. */
static void put_quoted(FILE *f, const char *text)
{
    fputc('\'', f);
    for (const char *c = text; *c; c++) {
        if (*c == '\'')
            fputc('\'', f);
        fputc(*c, f);
    }
    fputc('\'', f);
}

/* A number for a datablock; NaN is written so gnuplot skips the point. */
static void put_value(FILE *f, double value)
{
    if (isfinite(value))
        fprintf(f, " %.9g", value);
    else
        fprintf(f, " NaN");
}

/* Opens OUT_DIR/plots/NAME.gp and writes the terminal and output lines. */
static FILE *begin_script(const char *out_dir, const char *name, int width, int height, char *script,
                          size_t script_size, char *png, size_t png_size)
{
    char plots[4400];
    snprintf(plots, sizeof plots, "%s/plots", out_dir);
    char file_name[300];
    snprintf(file_name, sizeof file_name, "%s.gp", name);
    FILE *f = analyze_open(plots, file_name, script, script_size);
    if (f == NULL)
        return NULL;
    snprintf(png, png_size, "%s/%s.png", out_dir, name);
    fprintf(f, "# Written by dmnsp analyze; rerun with: gnuplot %s\n", script);
    fprintf(f, "set terminal pngcairo size %d,%d noenhanced font 'DejaVu Sans,11'\n", width, height);
    fprintf(f, "set output ");
    put_quoted(f, png);
    fprintf(f, "\nset datafile missing 'NaN'\n");
    fprintf(f, "set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', 0.75 '#5ec962', 1 '#fde725')\n");
    fprintf(f, "set grid lc rgb '#dddddd'\n");
    return f;
}

/* Runs GNUPLOT on SCRIPT, appending its output to OUT_DIR/plots/gnuplot.log. */
static int run_gnuplot(const char *gnuplot, const char *script, const char *out_dir)
{
    char log_path[4400];
    snprintf(log_path, sizeof log_path, "%s/plots/gnuplot.log", out_dir);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    char *argv[3] = {(char *)gnuplot, (char *)script, NULL};
    pid_t pid;
    int error = posix_spawnp(&pid, gnuplot, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (error != 0)
        return dmnsp_fail("analyze: cannot run %s: %s", gnuplot, strerror(error));
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return dmnsp_fail("analyze: waiting for %s failed: %s", gnuplot, strerror(errno));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return dmnsp_fail("analyze: %s %s failed (exit status %d); its messages are in %s", gnuplot, script,
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1, log_path);
    return 0;
}

static int finish_script(FILE *f, const char *script, const char *png, const char *out_dir, const char *gnuplot,
                         analyze_file_list *pngs)
{
    fprintf(f, "unset output\n");
    DMNSP_TRY(analyze_close(f, script));
    DMNSP_TRY(run_gnuplot(gnuplot, script, out_dir));
    const char *relative = png + strlen(out_dir) + 1;
    return analyze_list_add(pngs, relative);
}

/* ---------------------------------------------------------------------------
 * One run
 * ------------------------------------------------------------------------- */

/* Standard deviation per block, one line per task, a panel per modality and tensor. */
static int plot_param_std(const analyze_run *run, const char *out_dir, const char *gnuplot, analyze_file_list *pngs)
{
    char script[4400], png[4400];
    FILE *f = begin_script(out_dir, "param_std", 1400, 900, script, sizeof script, png, sizeof png);
    if (f == NULL)
        return -1;
    int tasks = run->checkpoint_tasks;
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < 2; k++) {
            fprintf(f, "$%s_%s << EOD\n", modality_names[m], tensor_names[k]);
            int blocks = m == 0 ? run->shape.vision_layers : run->shape.text_layers;
            for (int t = 0; t < tasks; t++) {
                for (int b = 0; run->stored[t] && b < blocks; b++) {
                    fprintf(f, "%d", b);
                    put_value(f, analyze_stats(run, t, m, b, k)->std);
                    fprintf(f, "\n");
                }
                if (run->stored[t])
                    fprintf(f, "\n\n");
            }
            fprintf(f, "EOD\n");
        }
    fprintf(f, "set multiplot layout 2,2 title 'Adapter parameter standard deviation per block (%s; colour = task)'\n",
            run->name);
    fprintf(f, "set xlabel 'block'\nset ylabel 'standard deviation'\nset xtics 1\nset xrange [-0.5:%f]\n",
            run->max_layers - 0.5);
    fprintf(f, "set cbrange [0:%d]\nset cblabel 'task'\nset cbtics 1\n", tasks > 1 ? tasks - 1 : 1);

    /* Data block i holds the i-th stored task; its colour is the task number. */
    int stored_count = 0;
    fprintf(f, "stored_tasks = '");
    for (int t = 0; t < tasks; t++) {
        if (run->stored[t])
            fprintf(f, "%s%d", stored_count++ ? " " : "", t);
    }
    fprintf(f, "'\n");
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < 2; k++) {
            /* Visual and text panels of a tensor share the y range, so their spread compares at a glance. */
            double low = INFINITY, high = -INFINITY;
            for (int mm = 0; mm < 2; mm++) {
                int blocks = mm == 0 ? run->shape.vision_layers : run->shape.text_layers;
                for (int t = 0; t < tasks; t++)
                    for (int b = 0; b < blocks; b++) {
                        double value = analyze_stats(run, t, mm, b, k)->std;
                        if (isfinite(value)) {
                            low = fmin(low, value);
                            high = fmax(high, value);
                        }
                    }
            }
            if (isfinite(low) && high > low)
                fprintf(f, "set yrange [%.9g:%.9g]\n", low - 0.05 * (high - low), high + 0.05 * (high - low));
            else
                fprintf(f, "set autoscale y\n");
            fprintf(f, "set title '%s %s'\n", modality_names[m], tensor_names[k]);
            fprintf(f,
                    "plot for [i=0:%d] $%s_%s index i using 1:2 with linespoints "
                    "lc palette cb (word(stored_tasks, i + 1) + 0) pt 7 ps 0.7 lw 1.5 notitle\n",
                    stored_count - 1, modality_names[m], tensor_names[k]);
        }
    fprintf(f, "unset multiplot\n");
    return finish_script(f, script, png, out_dir, gnuplot, pngs);
}

/* Histograms of the last stored task: one line per block (colour = block),
 * a panel per modality and tensor. Each block has its own bin edges, so
 * the counts are plotted as a density (share of entries per unit of
 * weight), which compares across blocks. */
static int plot_histograms(const analyze_run *run, int task, const char *out_dir, const char *gnuplot,
                           analyze_file_list *pngs)
{
    char name[64], script[4400], png[4400];
    snprintf(name, sizeof name, "param_histograms_task_%02d", task);
    FILE *f = begin_script(out_dir, name, 1400, 900, script, sizeof script, png, sizeof png);
    if (f == NULL)
        return -1;
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < 2; k++) {
            int blocks = m == 0 ? run->shape.vision_layers : run->shape.text_layers;
            fprintf(f, "$%s_%s << EOD\n", modality_names[m], tensor_names[k]);
            for (int b = 0; b < blocks; b++) {
                const param_stats *s = analyze_stats(run, task, m, b, k);
                double total = 0;
                for (int i = 0; i < PARAM_STATS_BINS; i++)
                    total += (double)s->histogram[i];
                for (int i = 0; i < PARAM_STATS_BINS && total > 0; i++) {
                    double width = s->edges[i + 1] - s->edges[i];
                    put_value(f, 0.5 * (s->edges[i] + s->edges[i + 1]));
                    put_value(f, width > 0 ? (double)s->histogram[i] / (total * width) : NAN);
                    fprintf(f, "\n");
                }
                fprintf(f, "\n\n");
            }
            fprintf(f, "EOD\n");
        }
    int layers = run->max_layers;
    fprintf(f, "set multiplot layout 2,2 title 'Adapter weight distributions after task %d (%s; colour = block)'\n",
            task, run->name);
    fprintf(f, "set xlabel 'weight value'\nset ylabel 'density (share of entries per unit)'\n");
    fprintf(f, "set cbrange [0:%d]\nset cblabel 'block'\n", layers > 1 ? layers - 1 : 1);
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < 2; k++) {
            int blocks = m == 0 ? run->shape.vision_layers : run->shape.text_layers;
            fprintf(f, "set title '%s %s'\n", modality_names[m], tensor_names[k]);
            fprintf(f,
                    "plot for [b=0:%d] $%s_%s index b using 1:2 with lines lc palette cb b lw 1.2 notitle\n",
                    blocks - 1, modality_names[m], tensor_names[k]);
        }
    fprintf(f, "unset multiplot\n");
    return finish_script(f, script, png, out_dir, gnuplot, pngs);
}

/* Change of the adapters between consecutive tasks, summed over blocks. */
static int plot_delta_norm(const analyze_run *run, const char *out_dir, const char *gnuplot, analyze_file_list *pngs)
{
    char script[4400], png[4400];
    FILE *f = begin_script(out_dir, "delta_norm", 1400, 600, script, sizeof script, png, sizeof png);
    if (f == NULL)
        return -1;
    int all_positive = 1;
    fprintf(f, "# task, then total ||delta|| and relative change for visual down_w, visual up_w, text down_w, "
               "text up_w\n$delta << EOD\n");
    for (int t = 1; t < run->checkpoint_tasks; t++) {
        /* The change is only measured when task t-1's snapshot is stored too. */
        if (!run->stored[t] || !run->stored[t - 1])
            continue;
        double totals[4], relative[4];
        for (int m = 0; m < 2; m++)
            for (int k = 0; k < 2; k++) {
                int blocks = m == 0 ? run->shape.vision_layers : run->shape.text_layers;
                double delta = 0, previous = 0;
                for (int b = 0; b < blocks; b++) {
                    double d = analyze_stats(run, t, m, b, k)->delta_norm;
                    double p = analyze_stats(run, t - 1, m, b, k)->norm;
                    delta += d * d;
                    previous += p * p;
                }
                totals[m * 2 + k] = sqrt(delta);
                relative[m * 2 + k] = previous > 0 ? sqrt(delta / previous) : NAN;
                if (!(totals[m * 2 + k] > 0) || !(relative[m * 2 + k] > 0))
                    all_positive = 0;
            }
        fprintf(f, "%d", t);
        for (int i = 0; i < 4; i++)
            put_value(f, totals[i]);
        for (int i = 0; i < 4; i++)
            put_value(f, relative[i]);
        fprintf(f, "\n");
    }
    fprintf(f, "EOD\n");
    fprintf(f, "set multiplot layout 1,2 title 'Adapter change between consecutive tasks, all blocks (%s)'\n",
            run->name);
    fprintf(f, "set xlabel 'task'\nset xtics 1\nset xrange [0.5:%f]\nset key top right\n",
            run->checkpoint_tasks - 0.5);
    if (all_positive)
        fprintf(f, "set logscale y\n");
    const char *styles[4] = {"lc rgb '#1f77b4' dt 1", "lc rgb '#1f77b4' dt 2", "lc rgb '#d62728' dt 1",
                             "lc rgb '#d62728' dt 2"};
    const char *titles[4] = {"visual down_w", "visual up_w", "text down_w", "text up_w"};
    for (int panel = 0; panel < 2; panel++) {
        fprintf(f, "set title '%s'\n", panel == 0 ? "||W_t - W_(t-1)|| (Frobenius)" : "||W_t - W_(t-1)|| / ||W_(t-1)||");
        fprintf(f, "set ylabel '%s'\n", panel == 0 ? "change norm" : "relative change");
        fprintf(f, "plot ");
        for (int i = 0; i < 4; i++)
            fprintf(f, "%s$delta using 1:%d with linespoints %s lw 2 pt 7 title '%s'", i ? ", " : "",
                    2 + panel * 4 + i, styles[i], titles[i]);
        fprintf(f, "\n");
    }
    fprintf(f, "unset multiplot\n");
    return finish_script(f, script, png, out_dir, gnuplot, pngs);
}

/* A ROWS x COLUMNS matrix as a heatmap, row 0 at the top, with its values
 * written in the cells: black on the light half of the colour range
 * [LOW, HIGH], white on the dark half. */
static void put_heatmap(FILE *f, const char *block_name, const double *values, int rows, int columns, double low,
                        double high, const char *label_format)
{
    fprintf(f, "$%s << EOD\n", block_name);
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < columns; c++)
            put_value(f, values[(size_t)r * columns + c]);
        fprintf(f, "\n");
    }
    fprintf(f, "EOD\n");
    if (!isfinite(low) || !isfinite(high)) {
        low = 0;
        high = 1;
    }
    if (!(high > low)) {
        low -= 0.5;
        high += 0.5;
    }
    double middle = 0.5 * (low + high);
    fprintf(f, "set cbrange [%.9g:%.9g]\n", low, high);
    fprintf(f, "set yrange [%f:%f]\nset xrange [-0.5:%f]\n", rows - 0.5, -0.5, columns - 0.5);
    fprintf(f, "set xtics 1 out nomirror\nset ytics 1 out nomirror\nunset grid\n");
    if (rows <= 16 && columns <= 16)
        fprintf(f,
                "plot $%s matrix with image notitle, "
                "$%s matrix using 1:2:($3 >= %.9g ? sprintf('%s', $3) : '') with labels font ',10' "
                "tc rgb 'black' notitle, "
                "$%s matrix using 1:2:($3 < %.9g ? sprintf('%s', $3) : '') with labels font ',10' "
                "tc rgb 'white' notitle\n",
                block_name, block_name, middle, label_format, block_name, middle, label_format);
    else
        fprintf(f, "plot $%s matrix with image notitle\n", block_name);
}

static int plot_lambda(const analyze_run *run, const char *out_dir, const char *gnuplot, analyze_file_list *pngs)
{
    int layers = run->shape.vision_layers;
    double *values = dmnsp_malloc((size_t)layers * layers * sizeof(double), "lambda plot");
    if (values == NULL)
        return -1;
    /* One colour range for all tasks, so the heatmaps compare across tasks. */
    double low = INFINITY, high = -INFINITY;
    for (int t = 0; t < run->checkpoint_tasks; t++) {
        for (int i = 0; run->has_lambda[t] && i < layers * layers; i++) {
            double value = run->lambda[(size_t)t * layers * layers + i];
            if (isfinite(value)) {
                low = fmin(low, value);
                high = fmax(high, value);
            }
        }
    }
    int status = 0;
    for (int t = 0; status == 0 && t < run->checkpoint_tasks; t++) {
        if (!run->has_lambda[t])
            continue;
        char name[64], script[4400], png[4400];
        snprintf(name, sizeof name, "lambda_task_%02d", t);
        FILE *f = begin_script(out_dir, name, 900, 800, script, sizeof script, png, sizeof png);
        if (f == NULL) {
            status = -1;
            break;
        }
        for (int i = 0; i < layers * layers; i++)
            values[i] = run->lambda[(size_t)t * layers * layers + i];
        fprintf(f, "set title 'lambda at task %d (%s): row l scales visual block l by block i''s null space'\n", t,
                run->name);
        fprintf(f, "set xlabel 'null-space block i'\nset ylabel 'projected block l'\nset cblabel 'lambda'\n");
        put_heatmap(f, "lambda", values, layers, layers, low, high, "%.1f");
        status = finish_script(f, script, png, out_dir, gnuplot, pngs);
    }
    free(values);
    return status;
}

static int plot_accuracy(const analyze_run *run, const char *out_dir, const char *gnuplot, analyze_file_list *pngs)
{
    char script[4400], png[4400];
    FILE *f = begin_script(out_dir, "accuracy_matrix", 900, 800, script, sizeof script, png, sizeof png);
    if (f == NULL)
        return -1;
    fprintf(f, "set title 'Accuracy (%%) on task j after training task i (%s)'\n", run->name);
    fprintf(f, "set xlabel 'evaluated task j'\nset ylabel 'after training task i'\nset cblabel 'accuracy (%%)'\n");
    put_heatmap(f, "accuracy", run->accuracy_matrix, run->tasks, run->tasks, 0, 100, "%.1f");
    DMNSP_TRY(finish_script(f, script, png, out_dir, gnuplot, pngs));

    f = begin_script(out_dir, "forgetting", 1000, 650, script, sizeof script, png, sizeof png);
    if (f == NULL)
        return -1;
    fprintf(f, "$metrics << EOD\n");
    for (int i = 0; i < run->tasks; i++) {
        fprintf(f, "%d", i);
        put_value(f, run->acc[i]);
        put_value(f, run->avg_acc[i]);
        put_value(f, run->forgetting[i]);
        put_value(f, run->bwt[i]);
        fprintf(f, "\n");
    }
    fprintf(f, "EOD\n");
    fprintf(f, "set title 'Accuracy and forgetting per task (%s)'\n", run->name);
    fprintf(f, "set xlabel 'task'\nset ylabel 'percent'\nset xtics 1\nset xrange [-0.25:%f]\nset key outside right\n",
            run->tasks - 0.75);
    fprintf(f, "plot $metrics using 1:2 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'acc', "
               "$metrics using 1:3 with linespoints lw 2 pt 7 dt 2 lc rgb '#1f77b4' title 'avg_acc', "
               "$metrics using 1:4 with linespoints lw 2 pt 5 lc rgb '#d62728' title 'forgetting', "
               "$metrics using 1:5 with linespoints lw 2 pt 9 lc rgb '#2ca02c' title 'bwt'\n");
    return finish_script(f, script, png, out_dir, gnuplot, pngs);
}

int analyze_plot_run(const analyze_run *run, const char *out_dir, const char *gnuplot, analyze_file_list *pngs)
{
    int consecutive = 0;
    for (int t = 1; run->has_checkpoint && t < run->checkpoint_tasks; t++)
        consecutive |= run->stored[t] && run->stored[t - 1];
    int last_stored = -1;
    for (int t = 0; run->has_checkpoint && t < run->checkpoint_tasks; t++)
        if (run->stored[t])
            last_stored = t;
    if (run->has_checkpoint && run->checkpoint_tasks > 0) {
        DMNSP_TRY(plot_param_std(run, out_dir, gnuplot, pngs));
        if (last_stored >= 0)
            DMNSP_TRY(plot_histograms(run, last_stored, out_dir, gnuplot, pngs));
        if (consecutive)
            DMNSP_TRY(plot_delta_norm(run, out_dir, gnuplot, pngs));
        DMNSP_TRY(plot_lambda(run, out_dir, gnuplot, pngs));
    }
    if (run->tasks > 0)
        DMNSP_TRY(plot_accuracy(run, out_dir, gnuplot, pngs));
    return 0;
}

/* ---------------------------------------------------------------------------
 * A sweep: last and average accuracy and forgetting per run.
 * ------------------------------------------------------------------------- */
int analyze_plot_sweep(const analyze_run *runs, int count, const char *out_dir, const char *gnuplot,
                       analyze_file_list *pngs)
{
    char script[4400], png[4400];
    int width = 300 + 140 * count;
    FILE *f = begin_script(out_dir, "sweep", width < 1000 ? 1000 : width, 750, script, sizeof script, png,
                           sizeof png);
    if (f == NULL)
        return -1;
    size_t longest = 0;
    fprintf(f, "# run, last, avg, forgetting after the last task (the summary's avg_forgetting)\n$sweep << EOD\n");
    for (int r = 0; r < count; r++) {
        const analyze_run *run = &runs[r];
        double last = analyze_last_accuracy(run);
        double avg = analyze_average_accuracy(run);
        char label[320];
        snprintf(label, sizeof label, "%s%s", run->name, run->finished ? "" : " (unfinished)");
        if (strlen(label) > longest)
            longest = strlen(label);
        fputc('"', f);
        for (const char *c = label; *c; c++)
            fputc(*c == '"' ? '\'' : *c, f);
        fputc('"', f);
        put_value(f, last);
        put_value(f, avg);
        put_value(f, run->tasks > 0 ? run->forgetting[run->tasks - 1] : NAN);
        fprintf(f, "\n");
    }
    fprintf(f, "EOD\n");
    int margin = 3 + (int)(0.45 * (double)longest);
    fprintf(f, "set title 'Sweep: accuracy and forgetting per run (unfinished runs: values after their last task)'\n");
    fprintf(f, "set style data histograms\nset style histogram clustered gap 1\n");
    fprintf(f, "set style fill solid 0.85 border -1\nset boxwidth 0.9\n");
    /* Percentages end at 100, so the band above 100 keeps the key clear of the bars. */
    fprintf(f, "set ylabel 'percent'\nset yrange [0:118]\nset ytics 0,10,100\n");
    fprintf(f, "set key inside top center horizontal noenhanced\n");
    fprintf(f, "set xrange [-0.6:%d.6]\nset xlabel 'sweep point (run folder)' offset 0,-1\n", count - 1);
    /* Rotated labels end at their tick, so the first one reaches left. */
    int left = (int)(0.75 * (double)longest);
    if (left < 10)
        left = 10;
    if (left > 40)
        left = 40;
    if (margin > 40)
        margin = 40;
    fprintf(f, "set xtics rotate by 30 right nomirror noenhanced\nset bmargin %d\nset lmargin %d\nset grid ytics\n",
            margin, left);
    fprintf(f, "plot $sweep using 2:xtic(1) lc rgb '#1f77b4' title 'last accuracy', "
               "'' using 3 lc rgb '#9ecae1' title 'average accuracy', "
               "'' using 4 lc rgb '#d62728' title 'forgetting after the last task (mean over old tasks)'\n");
    return finish_script(f, script, png, out_dir, gnuplot, pngs);
}
