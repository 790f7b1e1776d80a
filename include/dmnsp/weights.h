/* weights: CLIP weights in safetensors files, in OpenAI/open_clip or
 * Hugging Face transformers naming, loaded into dmnsp's frozen and adapter
 * buffers (layout in clip_layout.h), and saved under OpenAI names.
 *
 * Loading is three steps, so a caller can size its buffers in between:
 *
 *   weights_file *w;
 *   weights_open(path, &w);                  header only: names, shapes
 *   weights_infer_config(w, &config);        architecture from the shapes
 *   weights_check_preset(w, &config, "ViT-B/16");   optional
 *   ... allocate clip_frozen_count(&config), clip_adapter_count(&config) ...
 *   weights_read(w, &config, frozen, adapters);
 *   weights_close(w);
 *
 * weights_load() does all of it with malloc'd buffers.
 *
 * Naming schemes (detected from the patch-embedding tensor, with any common
 * prefix such as "module." stripped):
 *   OpenAI/open_clip: visual.conv1.weight, visual.transformer.resblocks.{i}.
 *     attn.in_proj_weight, ..., token_embedding.weight, text_projection, ...
 *   Hugging Face: vision_model.embeddings.patch_embedding.weight,
 *     vision_model.encoder.layers.{i}.self_attn.{q,k,v}_proj.weight (stacked
 *     into in_proj), pre_layrnorm, layer_norm1/2, mlp.fc1/fc2,
 *     post_layernorm, text_model.final_layer_norm, and
 *     visual_projection.weight / text_projection.weight stored [out, in],
 *     i.e. transposed relative to OpenAI's visual.proj / text_projection.
 * Adapters are read from "<block prefix>.adaptmlp.{down_proj,up_proj}.
 * {weight,bias}" under either scheme's block prefix; a file holds either
 * all of them or none.
 */
#ifndef DMNSP_WEIGHTS_H
#define DMNSP_WEIGHTS_H

#include "dmnsp/clip_layout.h"

typedef enum { WEIGHTS_NAMES_OPENAI = 0, WEIGHTS_NAMES_HF = 1 } weights_naming;

typedef struct weights_file weights_file;

/* Opens a safetensors file, detects its naming scheme and infers the
 * architecture from the header (no tensor data is read). Errors name the
 * file and, when no scheme matches, the names that were looked for; a file
 * holding only some of the adapter tensors is an error naming one missing
 * tensor. */
int weights_open(const char *path, weights_file **file);
void weights_close(weights_file *file);

weights_naming weights_naming_of(const weights_file *file);
/* "OpenAI" or "Hugging Face". */
const char *weights_naming_name(weights_naming naming);
/* 1 when the file holds adapter tensors for every block, 0 when none. */
int weights_has_adapters(const weights_file *file);
/* Sets *SCALE to the adapter output scale stored by weights_save and
 * returns 1; returns 0 (and leaves *SCALE) when the file has none, and -1
 * when the stored value is not a finite number. */
int weights_adapter_scale(const weights_file *file, float *scale);

/* Infers the architecture from tensor shapes, as OpenAI's build_model does:
 * vision width, patch size and layer count from the patch embedding and the
 * blocks present, resolution from the positional embedding's token count,
 * embed_dim from the text projection, context length, vocabulary size,
 * text width and layer count, heads = width / 64. adapter_bottleneck comes
 * from the adapter tensors when present; otherwise it and adapter_scale and
 * adapter_dropout keep the values CONFIG holds on entry. Fails when the
 * result does not pass clip_config_validate. */
int weights_infer_config(const weights_file *file, clip_config *config);

/* Compares the shape fields of INFERRED with preset PRESET_NAME; the first
 * difference is an error naming the field, the file and both values. */
int weights_check_preset(const weights_file *file, const clip_config *inferred, const char *preset_name);

/* Reads every frozen tensor into FROZEN (clip_frozen_count(config) floats)
 * and, when the file has adapters and ADAPTERS is not NULL, every adapter
 * tensor into ADAPTERS (clip_adapter_count(config) floats); otherwise
 * ADAPTERS is left untouched. CONFIG must match the file's shapes (use
 * weights_infer_config): a missing or mis-shaped tensor is an error naming
 * the tensor (in the file's naming) and both shapes. F16 and BF16 tensors
 * are converted to float. */
int weights_read(const weights_file *file, const clip_config *config, float *frozen, float *adapters);

/* Opens, infers, checks against PRESET_OR_NULL (NULL or "" or "auto": no
 * check), allocates and reads. CONFIG holds the adapter settings on entry
 * and the full configuration on return. *FROZEN and *ADAPTERS are
 * malloc'd (the caller frees them); *ADAPTERS is zero-filled when the file
 * has no adapters (*HAS_ADAPTERS = 0), which makes every adapter output 0,
 * so the model equals plain CLIP until the caller initialises them. */
int weights_load(const char *path, const char *preset_or_null, clip_config *config, float **frozen, float **adapters,
                 int *has_adapters);

/* Metadata key of the adapter output scale, which no tensor shape gives. */
#define WEIGHTS_ADAPTER_SCALE_KEY "dmnsp_adapter_scale"

/* Writes every frozen tensor and, when ADAPTERS is not NULL, every adapter
 * tensor under OpenAI names with PyTorch shapes as F32 safetensors,
 * atomically (temporary file + rename). With adapters, the metadata gets
 * the config's adapter_scale under WEIGHTS_ADAPTER_SCALE_KEY. */
int weights_save(const char *path, const clip_config *config, const float *frozen, const float *adapters);

#endif
