#!/usr/bin/env bash
# CLI exit codes and messages: 0 for help/version/valid configs, 2 for usage
# errors, 1 for invalid configs, each with the message a user needs.
set -u
dmnsp=${DMNSP_BINARY:?}
configs=${DMNSP_SOURCE_DIR:?}/configs/class
failures=0

expect() { # expect CODE NEEDLE -- COMMAND...
    local code=$1 needle=$2
    shift 3
    local output status
    output=$("$@" 2>&1)
    status=$?
    if [[ $status -ne $code ]]; then
        echo "FAIL: '$*' exited $status, expected $code; output: $output"
        failures=$((failures + 1))
    elif [[ -n $needle && $output != *"$needle"* ]]; then
        echo "FAIL: '$*' output lacks '$needle': $output"
        failures=$((failures + 1))
    else
        echo "ok: $* -> $status"
    fi
}

expect 0 "usage: dmnsp COMMAND" -- "$dmnsp" --help
expect 0 "dmnsp 0." -- "$dmnsp" --version
expect 2 "usage: dmnsp COMMAND" -- "$dmnsp"
expect 2 "unknown command 'trian' (did you mean 'train'?)" -- "$dmnsp" trian
expect 2 "unknown command 'frobnicate'" -- "$dmnsp" frobnicate
expect 0 "usage: dmnsp export" -- "$dmnsp" export --help
expect 2 "a run folder is needed" -- "$dmnsp" export --out model.safetensors
expect 2 "--out FILE.safetensors is needed" -- "$dmnsp" export some_run
expect 1 "some_run/config.yaml: cannot open config file" -- "$dmnsp" export some_run --out model.safetensors
expect 0 "usage: dmnsp config" -- "$dmnsp" config --help
expect 2 "missing the config file" -- "$dmnsp" config
expect 2 "unknown option '--fast'" -- "$dmnsp" config "$configs/cifar100_10-10.yaml" --fast
expect 2 "is not a key=value override" -- "$dmnsp" config "$configs/cifar100_10-10.yaml" lambda_scale
expect 2 "'=3' is not a key=value override" -- "$dmnsp" config "$configs/cifar100_10-10.yaml" =3
expect 0 "lambda_scale: 10" -- "$dmnsp" config "$configs/cifar100_10-10.yaml" lambda_scale=10 nullspace.solver=slepc
expect 0 'solver: "slepc"' -- "$dmnsp" config "$configs/cifar100_10-10.yaml" lambda_scale=10 nullspace.solver=slepc
expect 0 "increment: 10" -- "$dmnsp" config "$configs/cifar100_10-10.yaml"
expect 1 "lamda_scale" -- "$dmnsp" config "$configs/cifar100_10-10.yaml" lamda_scale=10
expect 1 "cannot open config file" -- "$dmnsp" config no_such_config.yaml

# configs/README.md contains the current key table.
keys_doc=${DMNSP_SOURCE_DIR}/configs/README.md
if diff <("$dmnsp" config --keys) <(sed -n '/<!-- generated: dmnsp config --keys -->/,$p' "$keys_doc" | tail -n +2) \
    >keys.diff; then
    echo "ok: configs/README.md lists the keys of dmnsp config --keys"
else
    echo "FAIL: configs/README.md differs from dmnsp config --keys (regenerate its table): $(cat keys.diff)"
    failures=$((failures + 1))
fi

# Every shipped config resolves.
for config in "$configs"/*.yaml; do
    expect 0 "output_dir:" -- "$dmnsp" config "$config"
done

if [[ $failures -gt 0 ]]; then
    echo "$failures CLI check(s) failed"
    exit 1
fi
echo "all CLI checks passed"
