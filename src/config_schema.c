/* config_schema: every configuration key, its type, default and meaning.
 * This table is the one place defaults live; `dmnsp config` prints keys in
 * this order. Reference values follow the DMNSP reference configs
 * (ViT-B/16, batch 128, lr 1e-3, 4 epochs, 30 warm-up steps, seed 32). */
#include "dmnsp/config.h"

#define NO_RANGE 1, 0

static const config_key schema[] = {
    /* experiment */
    {"scenario", CONFIG_CHOICE, "class", "class", NO_RANGE, "continual-learning scenario (class-incremental)"},
    {"dataset", CONFIG_CHOICE, "cifar100", "cifar100|tinyimagenet|imagefolder|fashionmnist|mnist", NO_RANGE,
     "dataset reader"},
    {"dataset_root", CONFIG_PATH, "", NULL, NO_RANGE, "folder holding the dataset files"},
    {"class_order", CONFIG_PATH, "", NULL, NO_RANGE,
     "YAML file with `class_order: [...]` (dataset class ids in task order); empty: 0..C-1"},
    {"class_names", CONFIG_PATH, "", NULL, NO_RANGE,
     "imagefolder: file with one class name per line, line k naming the k-th training folder in sorted (byte) order; "
     "empty: the folder names"},
    {"initial_increment", CONFIG_INT, "10", NULL, 1, 1e6, "classes in the first task"},
    {"increment", CONFIG_INT, "${initial_increment}", NULL, 1, 1e6, "classes in every later task"},
    {"max_tasks", CONFIG_INT, "0", NULL, 0, 1e6, "run only the first N tasks (0: all)"},
    {"train_per_class", CONFIG_INT, "0", NULL, 0, 1e9,
     "use at most the first N training images of each class, in file order (0: all)"},
    {"test_per_class", CONFIG_INT, "0", NULL, 0, 1e9,
     "evaluate on at most the first N test images of each class (0: all)"},
    {"method", CONFIG_CHOICE, "DMNSP", "DMNSP|finetune|zeroshot|DMNSP-fixed|NSP-single|DMNSP-both", NO_RANGE,
     "training method"},
    {"seed", CONFIG_INT, "32", NULL, 0, 4294967295.0, "seed for shuffling, dropout and random weights"},

    /* model */
    {"model_name", CONFIG_STRING, "ViT-B/16", NULL, NO_RANGE,
     "model preset (ViT-B/16, ViT-B/32, ViT-L/14, tiny); auto or empty: taken from the weights"},
    {"weights", CONFIG_PATH, "", NULL, NO_RANGE, "CLIP weights (.safetensors); empty: seeded random weights"},
    {"vocab", CONFIG_PATH, "", NULL, NO_RANGE,
     "BPE vocabulary (bpe_simple_vocab_16e6.txt.gz or a vocab.json + merges.txt folder); empty: byte level"},
    {"prompt_template", CONFIG_STRING, "a bad photo of a {}.", NULL, NO_RANGE, "prompt; {} is the class name"},
    {"adapter.bottleneck", CONFIG_INT, "64", NULL, 1, 1e5, "adapter hidden width"},
    {"adapter.scale", CONFIG_FLOAT, "0.1", NULL, NO_RANGE, "adapter output scale"},
    {"adapter.dropout", CONFIG_FLOAT, "0.1", NULL, 0, 0.99, "adapter dropout probability (training only)"},
    {"recompute_activations", CONFIG_BOOL, "false", NULL, NO_RANGE,
     "keep only block inputs and recompute activations in backward (less memory, ~1.3x time)"},

    /* training */
    {"batch_size", CONFIG_INT, "128", NULL, 1, 1e7, "global training batch (split over ranks)"},
    {"eval_batch_size", CONFIG_INT, "256", NULL, 1, 1e7, "global evaluation batch"},
    {"epochs", CONFIG_INT, "4", NULL, 0, 1e6, "passes over each task's training images"},
    {"lr", CONFIG_FLOAT, "1e-3", NULL, 0, 1e3, "peak learning rate"},
    {"weight_decay", CONFIG_FLOAT, "0", NULL, 0, 1e3, "AdamW decoupled weight decay"},
    {"ls", CONFIG_FLOAT, "0", NULL, 0, 1, "label smoothing"},
    {"warmup_steps", CONFIG_INT, "30", NULL, 0, 1e9, "linear warm-up steps, then cosine decay to 0"},
    {"shuffle", CONFIG_BOOL, "true", NULL, NO_RANGE, "seeded shuffle per epoch (false: file order)"},
    {"log_interval", CONFIG_INT, "20", NULL, 1, 1e9, "training steps between progress lines"},

    /* DMNSP */
    {"top_select", CONFIG_INT, "1", NULL, 1, 1e6, "k: top eigenvectors of each task removed from the null space"},
    {"top_k_ratio", CONFIG_FLOAT, "0.1", NULL, NO_RANGE, "rho in (0, 1]: share of the largest similarities averaged"},
    {"lambda_scale", CONFIG_FLOAT, "30", NULL, NO_RANGE, "s: scale of the dynamic coefficients"},
    {"lambda_apply", CONFIG_CHOICE, "gradient", "gradient|step", NO_RANGE,
     "gradient: lambda scales the gradient (reference); step: per-block AdamW update factor"},
    {"projection_normalize", CONFIG_BOOL, "false", NULL, NO_RANGE,
     "divide each projector by its task count and lambda by s (keeps fp32 finite)"},
    {"nullspace.solver", CONFIG_CHOICE, "auto", "auto|slepc|scalapack|lapack", NO_RANGE,
     "eigensolver for the null-space bases"},
    {"nullspace.basis_batches", CONFIG_INT, "1", NULL, 1, 1e6, "batches of each finished task used for its bases"},
    {"nullspace.basis_batch_size", CONFIG_INT, "128", NULL, 1, 1e7, "images per basis batch"},
    {"nullspace.union", CONFIG_CHOICE, "concat", "concat|orthonormal", NO_RANGE,
     "concat: reference concatenated bases; orthonormal: projector onto the intersection"},

    /* output */
    {"output_dir", CONFIG_STRING, "experiments/${scenario}/${dataset}_${initial_increment}-${increment}-${method}",
     NULL, NO_RANGE, "run folder (config.yaml, metrics.json, checkpoint.h5, train.log)"},
    {"log_path", CONFIG_STRING, "${output_dir}/train.log", NULL, NO_RANGE, "log file"},
    {"log_level", CONFIG_CHOICE, "info", "debug|info|warn|error", NO_RANGE, "log verbosity"},
    {"checkpoint.every_task", CONFIG_BOOL, "true", NULL, NO_RANGE, "write checkpoint.h5 after every task"},
    {"checkpoint.interval_minutes", CONFIG_FLOAT, "30", NULL, 0, 1e6,
     "minutes between progress checkpoints inside a task, each written after an optimizer step, so a job cut by "
     "its time limit loses about this much training at most (0: none). Written only with "
     "checkpoint.every_task=true"},
    {"checkpoint.interval_steps", CONFIG_INT, "0", NULL, 0, 1e9,
     "also write a progress checkpoint after every N optimizer steps of a task, counted from the task's first "
     "step (0: off)"},
    {"checkpoint.keep_bases", CONFIG_BOOL, "true", NULL, NO_RANGE,
     "store eigenvalues and full eigenvectors of every task (needed to resume DMNSP)"},
    {"resume", CONFIG_STRING, "", NULL, NO_RANGE, "checkpoint to continue from, or auto (the run's own)"},
    {"overwrite", CONFIG_BOOL, "false", NULL, NO_RANGE, "replace a finished run in output_dir"},
};

const config_key *config_schema(int *count)
{
    *count = (int)(sizeof schema / sizeof schema[0]);
    return schema;
}
