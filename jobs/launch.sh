# shellcheck shell=bash
# Common part of the dmnsp batch scripts (jobs/slurm/*.sbatch, jobs/pbs/*.pbs).
# Sourced, not executed: it defines dmnsp_launch, which builds the
# `dmnsp train` command line for one config of configs/class/ and starts it
# under srun (Slurm) or mpirun (PBS or a plain node list).
#
# Environment (all optional except where the config leaves a path empty):
#   DMNSP_ROOT        dmnsp source tree (default: the folder the job was submitted from)
#   DMNSP             dmnsp executable (default: $DMNSP_ROOT/build/dmnsp)
#   NODES             nodes (PBS; Slurm takes the allocation's)
#   RANKS_PER_NODE    MPI ranks per node (PBS; Slurm takes --ntasks-per-node)
#   THREADS_PER_RANK  OpenMP/OpenBLAS threads per rank = cores per rank
#   DATA_ROOT         dataset_root override (folder holding cifar-100-binary/,
#                     tiny-imagenet-200/ or the Fashion-MNIST IDX files)
#   WEIGHTS           CLIP weights (.safetensors); empty keeps the config's value
#   VOCAB             bpe_simple_vocab_16e6.txt.gz; empty keeps the config's value
#   OUTPUT_ROOT       runs go to $OUTPUT_ROOT/<config name> (default: $DMNSP_ROOT/experiments)
#   EXTRA             more key=value overrides, then PETSc options
#                     (EXTRA="lambda_scale=10 -svd_type lanczos"), split on spaces
#
# Every launch passes resume=auto: a job that hit its time limit continues
# from its last checkpoint when it is submitted again (saved after every
# task and every checkpoint.interval_minutes inside one), and a finished
# run (metrics.json ends with a summary line) is not started again.
#
# Memory per rank, an estimate for ViT-B/16 at 224 px (not a measurement):
#   frozen weights           ~150 M floats                     ~ 600 MB
#   activations per image    197 tokens x 768 width x ~30 floats
#                            per token and width x 12 blocks   ~ 220 MB
#   null-space bases         12 x 768 x 768 floats per finished task
#                                                              ~  28 MB per task
#   -> 0.6 GB + 0.22 GB x (batch_size / ranks) + 0.03 GB x tasks.
#   batch 128 on 4 ranks: ~7.6 GB per rank (+0.3 GB after 10 tasks);
#   on 8 ranks: ~4.1 GB; on 16 ranks: ~2.4 GB. recompute_activations=true
#   trades compute for most of the activation memory. The tiny preset
#   (Fashion-MNIST default) needs well under 1 GB per rank.

# dmnsp_config_path NAME: configs/class/NAME.yaml, or NAME itself when it is a file.
dmnsp_config_path() {
    local name=$1
    if [[ -f $name ]]; then
        printf '%s\n' "$name"
    else
        printf '%s\n' "$DMNSP_ROOT/configs/class/$name.yaml"
    fi
}

# dmnsp_launch NAME LAUNCHER: LAUNCHER is "srun" or "mpirun".
# dmnsp_job_overrides: sets job_overrides to the key=value overrides that
# DATA_ROOT, WEIGHTS, VOCAB and EXTRA ask for, and job_petsc to the PETSc
# options of EXTRA (its first word starting with '-' and everything after).
dmnsp_job_overrides() {
    job_overrides=() job_petsc=()
    [[ -n ${DATA_ROOT:-} ]] && job_overrides+=("dataset_root=$DATA_ROOT")
    [[ -n ${WEIGHTS:-} ]] && job_overrides+=("weights=$WEIGHTS")
    [[ -n ${VOCAB:-} ]] && job_overrides+=("vocab=$VOCAB")
    local -a words=()
    read -r -a words <<<"${EXTRA:-}"
    local word
    for word in "${words[@]}"; do
        if [[ ${#job_petsc[@]} -gt 0 || $word == -* ]]; then
            job_petsc+=("$word")
        else
            job_overrides+=("$word")
        fi
    done
}

dmnsp_launch() {
    local name=$1 launcher=$2
    : "${DMNSP_ROOT:?set DMNSP_ROOT to the dmnsp source tree (or submit from it)}"
    local dmnsp=${DMNSP:-$DMNSP_ROOT/build/dmnsp}
    local config
    config=$(dmnsp_config_path "$name")
    if [[ ! -x $dmnsp ]]; then
        echo "dmnsp-job: executable $dmnsp not found: build dmnsp (cmake --build build) or set DMNSP" >&2
        return 1
    fi
    if [[ ! -f $config ]]; then
        echo "dmnsp-job: config $config not found" >&2
        return 1
    fi

    local threads=${THREADS_PER_RANK:-1}
    export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
    export OMP_PLACES=cores OMP_PROC_BIND=close
    # Idle OpenMP threads sleep instead of spinning on the cores that
    # OpenBLAS's own threads need (see bench/README.md, Threads).
    export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

    local output_dir
    output_dir=${OUTPUT_ROOT:-$DMNSP_ROOT/experiments}/$(basename "$config" .yaml)
    if grep -qs '"summary": *true' "$output_dir/metrics.json"; then
        echo "dmnsp-job: $output_dir is finished (metrics.json has its summary line); nothing to do"
        return 0
    fi

    local -a overrides=("output_dir=$output_dir" "resume=auto") job_overrides job_petsc
    dmnsp_job_overrides

    # Validate the overrides before waiting for ranks to start.
    "$dmnsp" config "$config" "${overrides[@]}" "${job_overrides[@]}" >/dev/null || return 1

    local -a command
    case $launcher in
    srun)
        # srun does not inherit --cpus-per-task from sbatch (Slurm 22.05 and
        # later), so it is passed again; each rank gets its own cores.
        command=(srun --cpus-per-task="$threads" --cpu-bind=cores)
        ;;
    mpirun)
        local nodes=${NODES:-1} per_node=${RANKS_PER_NODE:-1}
        # Open MPI 4 syntax: PER_NODE ranks on every node, THREADS cores each
        # (PE=), every rank bound to its cores.
        command=(mpirun -np "$((nodes * per_node))" --map-by "ppr:$per_node:node:PE=$threads" --bind-to core
            --report-bindings -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -x OMP_PLACES -x OMP_PROC_BIND -x OMP_WAIT_POLICY)
        if [[ -n ${PBS_NODEFILE:-} ]]; then
            command+=(--hostfile "$PBS_NODEFILE")
        fi
        ;;
    *)
        echo "dmnsp-job: unknown launcher '$launcher' (expected srun or mpirun)" >&2
        return 2
        ;;
    esac

    echo "dmnsp-job: $(date -u '+%Y-%m-%d %H:%M:%S') config $config -> $output_dir"
    echo "dmnsp-job: ${command[*]} $dmnsp train $config ${overrides[*]} ${job_overrides[*]} ${job_petsc[*]}"
    "${command[@]}" "$dmnsp" train "$config" "${overrides[@]}" "${job_overrides[@]}" "${job_petsc[@]}"
}
