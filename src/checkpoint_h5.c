/* checkpoint_h5: HDF5 helpers of the checkpoint writer and reader. */
#include "checkpoint_internal.h"

#include "dmnsp/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ck_silence_hdf5(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* ---------------------------------------------------------------------------
 * Error messages: the innermost entry of HDF5's error stack is the most
 * specific one ("truncated file: eof = ...", "unable to locate file
 * signature"), so it goes into the message.
 * ------------------------------------------------------------------------- */
typedef struct {
    char text[256];
    int found;
} innermost_error;

static herr_t keep_innermost(unsigned n, const H5E_error2_t *entry, void *client_data)
{
    innermost_error *innermost = client_data;
    if (n == 0 && entry->desc != NULL) {
        snprintf(innermost->text, sizeof innermost->text, "%s", entry->desc);
        innermost->found = 1;
    }
    return 0;
}

int ck_fail_h5(const char *file, const char *what, const char *object)
{
    innermost_error innermost = {{0}, 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, &innermost);
    if (innermost.found)
        return dmnsp_fail("checkpoint: %s: %s %s (HDF5: %s)", file, what, object, innermost.text);
    return dmnsp_fail("checkpoint: %s: %s %s", file, what, object);
}

hid_t ck_file_access(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return fapl;
    /* Lock where possible; Lustre and some NFS mounts reject locks, and a
     * checkpoint must still be written there. */
    if (H5Pset_file_locking(fapl, 1, 1) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

void ck_block_name(char *buf, size_t size, int block)
{
    snprintf(buf, size, "block_%02d", block);
}

void ck_task_name(char *buf, size_t size, int task)
{
    snprintf(buf, size, "task_%02d", task);
}

/* HDF5 path of PARENT followed by "/NAME", for messages. */
static void object_name(hid_t parent, const char *name, char *buf, size_t size)
{
    char parent_name[512] = "";
    if (H5Iget_name(parent, parent_name, sizeof parent_name) < 0)
        parent_name[0] = '\0';
    if (strcmp(parent_name, "/") == 0)
        parent_name[0] = '\0';
    snprintf(buf, size, "%s/%s", parent_name, name);
}

/* ---------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------- */
hid_t ck_create_group(const char *file, hid_t parent, const char *name)
{
    hid_t group = H5Gcreate2(parent, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (group < 0) {
        char full[600];
        object_name(parent, name, full, sizeof full);
        ck_fail_h5(file, "cannot create group", full);
    }
    return group;
}

int ck_write_attr_string(const char *file, hid_t object, const char *name, const char *text)
{
    /* Attributes live in the object header, whose messages are limited to
     * 64 KiB in the default (HDF5 1.8-compatible) format. */
    size_t length = strlen(text);
    if (length > 60000)
        return dmnsp_fail("checkpoint: %s: attribute '%s' is %zu bytes long, more than the 60000 bytes an "
                          "attribute can hold",
                          file, name, length);

    hid_t type = H5Tcopy(H5T_C_S1);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = -1;
    int status = -1;
    if (type >= 0 && space >= 0 && H5Tset_size(type, length > 0 ? length : 1) >= 0 &&
        H5Tset_strpad(type, H5T_STR_NULLTERM) >= 0) {
        attr = H5Acreate2(object, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
        if (attr >= 0 && H5Awrite(attr, type, length > 0 ? text : "") >= 0)
            status = 0;
    }
    if (status != 0) {
        char full[600];
        object_name(object, name, full, sizeof full);
        ck_fail_h5(file, "cannot write attribute", full);
    }
    if (attr >= 0)
        H5Aclose(attr);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    return status;
}

int ck_write_attr_long(const char *file, hid_t object, const char *name, long value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = space >= 0 ? H5Acreate2(object, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    long long wide = value;
    int status = (attr >= 0 && H5Awrite(attr, H5T_NATIVE_LLONG, &wide) >= 0) ? 0 : -1;
    if (status != 0) {
        char full[600];
        object_name(object, name, full, sizeof full);
        ck_fail_h5(file, "cannot write attribute", full);
    }
    if (attr >= 0)
        H5Aclose(attr);
    if (space >= 0)
        H5Sclose(space);
    return status;
}

int ck_write_attr_longs(const char *file, hid_t object, const char *name, const long *values, int count)
{
    long long *wide = dmnsp_malloc((size_t)count * sizeof *wide, "checkpoint attribute");
    if (wide == NULL)
        return -1;
    for (int i = 0; i < count; i++)
        wide[i] = values[i];
    hsize_t dims[1] = {(hsize_t)count};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t attr = space >= 0 ? H5Acreate2(object, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int status = (attr >= 0 && H5Awrite(attr, H5T_NATIVE_LLONG, wide) >= 0) ? 0 : -1;
    if (status != 0) {
        char full[600];
        object_name(object, name, full, sizeof full);
        ck_fail_h5(file, "cannot write attribute", full);
    }
    if (attr >= 0)
        H5Aclose(attr);
    if (space >= 0)
        H5Sclose(space);
    free(wide);
    return status;
}

int ck_write_dataset(const char *file, hid_t parent, const char *name, hid_t file_type, hid_t mem_type, int rank,
                     const hsize_t *dims, const void *data, const char *description)
{
    hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    hid_t dataset = -1;
    int status = -1;
    if (space >= 0) {
        dataset = H5Dcreate2(parent, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        /* An empty dataset (DATA NULL) is only created: H5Dwrite rejects a NULL buffer. */
        if (dataset >= 0 && (data == NULL || H5Dwrite(dataset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0))
            status = 0;
    }
    if (status != 0) {
        char full[600];
        object_name(parent, name, full, sizeof full);
        ck_fail_h5(file, "cannot write dataset", full);
    } else if (description != NULL) {
        status = ck_write_attr_string(file, dataset, "description", description);
    }
    if (dataset >= 0)
        H5Dclose(dataset);
    if (space >= 0)
        H5Sclose(space);
    return status;
}

/* ---------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------- */
int ck_exists(hid_t file, const char *object)
{
    /* H5Lexists needs every intermediate link to exist, so walk the path. */
    char partial[512];
    size_t length = strlen(object);
    if (length >= sizeof partial)
        return 0;
    for (size_t i = 1; i <= length; i++) {
        if (object[i] != '/' && object[i] != '\0')
            continue;
        memcpy(partial, object, i);
        partial[i] = '\0';
        if (H5Lexists(file, partial, H5P_DEFAULT) <= 0)
            return 0;
    }
    return 1;
}

static void format_dims(char *buf, size_t size, int rank, const hsize_t *dims)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

/* Opens OBJECT and checks its shape; returns the dataset or -1. */
static hid_t open_checked(const char *file, hid_t h5file, const char *object, int rank, const hsize_t *dims,
                          hsize_t *found_dims)
{
    if (!ck_exists(h5file, object)) {
        dmnsp_fail("checkpoint: %s: dataset %s is missing", file, object);
        return -1;
    }
    hid_t dataset = H5Dopen2(h5file, object, H5P_DEFAULT);
    if (dataset < 0) {
        ck_fail_h5(file, "cannot open dataset", object);
        return -1;
    }
    hid_t space = H5Dget_space(dataset);
    int found_rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (found_rank < 0 || found_rank > 4) {
        if (space >= 0)
            H5Sclose(space);
        H5Dclose(dataset);
        dmnsp_fail("checkpoint: %s: dataset %s has an unreadable or unexpected dataspace", file, object);
        return -1;
    }
    H5Sget_simple_extent_dims(space, found_dims, NULL);
    H5Sclose(space);

    int same = found_rank == rank;
    for (int i = 0; same && dims != NULL && i < rank; i++)
        same = found_dims[i] == dims[i];
    if (!same) {
        char expected[128], found[128];
        format_dims(expected, sizeof expected, rank, dims);
        format_dims(found, sizeof found, found_rank, found_dims);
        H5Dclose(dataset);
        if (dims == NULL)
            dmnsp_fail("checkpoint: %s: dataset %s has rank %d, expected %d", file, object, found_rank, rank);
        else
            dmnsp_fail("checkpoint: %s: dataset %s has shape %s, expected %s", file, object, found, expected);
        return -1;
    }
    return dataset;
}

int ck_read_dataset(const char *file, hid_t h5file, const char *object, hid_t mem_type, int rank,
                    const hsize_t *dims, void *out)
{
    hsize_t found_dims[4];
    hid_t dataset = open_checked(file, h5file, object, rank, dims, found_dims);
    if (dataset < 0)
        return -1;
    int status = H5Dread(dataset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0 ? 0 : -1;
    if (status != 0)
        ck_fail_h5(file, "cannot read dataset", object);
    H5Dclose(dataset);
    return status;
}

int ck_read_vector(const char *file, hid_t h5file, const char *object, hid_t mem_type, size_t element_size,
                   void **out, int *count)
{
    hsize_t found_dims[4];
    *out = NULL;
    *count = 0;
    hid_t dataset = open_checked(file, h5file, object, 1, NULL, found_dims);
    if (dataset < 0)
        return -1;
    void *buffer = dmnsp_malloc((found_dims[0] > 0 ? found_dims[0] : 1) * element_size, object);
    int status = -1;
    if (buffer != NULL) {
        status = H5Dread(dataset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer) >= 0 ? 0 : -1;
        if (status != 0)
            ck_fail_h5(file, "cannot read dataset", object);
    }
    H5Dclose(dataset);
    if (status != 0) {
        free(buffer);
        return -1;
    }
    *out = buffer;
    *count = (int)found_dims[0];
    return 0;
}

static hid_t open_attribute(const char *file, hid_t object, const char *object_name, const char *name)
{
    htri_t exists = H5Aexists(object, name);
    if (exists <= 0) {
        dmnsp_fail("checkpoint: %s: attribute '%s' of %s is missing", file, name, object_name);
        return -1;
    }
    hid_t attr = H5Aopen(object, name, H5P_DEFAULT);
    if (attr < 0) {
        char full[600];
        snprintf(full, sizeof full, "'%s' of %s", name, object_name);
        ck_fail_h5(file, "cannot open attribute", full);
    }
    return attr;
}

int ck_read_attr_long(const char *file, hid_t object, const char *object_name, const char *name, long *value)
{
    hid_t attr = open_attribute(file, object, object_name, name);
    if (attr < 0)
        return -1;
    hid_t type = H5Aget_type(attr);
    int is_integer = type >= 0 && H5Tget_class(type) == H5T_INTEGER;
    hid_t space = H5Aget_space(attr);
    hssize_t points = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    long long wide = 0;
    int status = -1;
    if (!is_integer || points != 1)
        dmnsp_fail("checkpoint: %s: attribute '%s' of %s is not a single integer", file, name, object_name);
    else if (H5Aread(attr, H5T_NATIVE_LLONG, &wide) < 0)
        ck_fail_h5(file, "cannot read attribute", name);
    else
        status = 0;
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    H5Aclose(attr);
    *value = (long)wide;
    return status;
}

int ck_read_attr_longs(const char *file, hid_t object, const char *object_name, const char *name, long **values,
                       int *count)
{
    *values = NULL;
    *count = 0;
    hid_t attr = open_attribute(file, object, object_name, name);
    if (attr < 0)
        return -1;
    hid_t type = H5Aget_type(attr);
    hid_t space = H5Aget_space(attr);
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hssize_t points = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    int status = -1;
    long long *wide = NULL;
    if (type < 0 || H5Tget_class(type) != H5T_INTEGER || rank != 1 || points < 1 || points > 1000000) {
        dmnsp_fail("checkpoint: %s: attribute '%s' of %s is not a list of integers", file, name, object_name);
    } else {
        wide = dmnsp_malloc((size_t)points * sizeof *wide, "checkpoint attribute");
        *values = dmnsp_malloc((size_t)points * sizeof **values, "checkpoint attribute");
        if (wide != NULL && *values != NULL && H5Aread(attr, H5T_NATIVE_LLONG, wide) >= 0) {
            for (hssize_t i = 0; i < points; i++)
                (*values)[i] = (long)wide[i];
            *count = (int)points;
            status = 0;
        } else if (wide != NULL && *values != NULL) {
            ck_fail_h5(file, "cannot read attribute", name);
        }
    }
    if (status != 0) {
        free(*values);
        *values = NULL;
    }
    free(wide);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    H5Aclose(attr);
    return status;
}

int ck_read_attr_string(const char *file, hid_t object, const char *object_name, const char *name, char **text)
{
    *text = NULL;
    hid_t attr = open_attribute(file, object, object_name, name);
    if (attr < 0)
        return -1;
    hid_t type = H5Aget_type(attr);
    int status = -1;
    if (type < 0 || H5Tget_class(type) != H5T_STRING) {
        dmnsp_fail("checkpoint: %s: attribute '%s' of %s is not a string", file, name, object_name);
    } else if (H5Tis_variable_str(type) > 0) {
        /* Written by h5py or another tool: a variable-length string. */
        hid_t memory = H5Tcopy(H5T_C_S1);
        char *value = NULL;
        if (memory >= 0 && H5Tset_size(memory, H5T_VARIABLE) >= 0 && H5Aread(attr, memory, &value) >= 0) {
            *text = strdup(value != NULL ? value : "");
            status = *text != NULL ? 0 : dmnsp_fail("checkpoint: out of memory reading attribute '%s'", name);
            H5free_memory(value);
        } else {
            ck_fail_h5(file, "cannot read attribute", name);
        }
        if (memory >= 0)
            H5Tclose(memory);
    } else {
        size_t size = H5Tget_size(type);
        char *value = dmnsp_calloc(size + 1, 1, "checkpoint string attribute");
        if (value != NULL && H5Aread(attr, type, value) >= 0) {
            *text = value;
            status = 0;
        } else {
            free(value);
            if (value != NULL)
                ck_fail_h5(file, "cannot read attribute", name);
        }
    }
    if (type >= 0)
        H5Tclose(type);
    H5Aclose(attr);
    return status;
}

/* ---------------------------------------------------------------------------
 * Adapter tensors
 * ------------------------------------------------------------------------- */
static const char *const modality_names[2] = {"visual", "text"};

int ck_write_adapters(const char *file, hid_t group, const clip_config *config, const float *adapters,
                      const char *what)
{
    for (int modality = 0; modality < 2; modality++) {
        int layers = modality == CLIP_VISUAL ? config->vision_layers : config->text_layers;
        hid_t modality_group = ck_create_group(file, group, modality_names[modality]);
        if (modality_group < 0)
            return -1;
        for (int block = 0; block < layers; block++) {
            char name[32], text[256];
            ck_block_name(name, sizeof name, block);
            hid_t block_group = ck_create_group(file, modality_group, name);
            if (block_group < 0) {
                H5Gclose(modality_group);
                return -1;
            }

            /* clip_adapter_block only computes pointers; nothing is written through them. */
            clip_adapter_view view;
            clip_adapter_block(config, (float *)adapters, (clip_modality)modality, block, &view);
            hsize_t down_w[2] = {(hsize_t)view.bottleneck, (hsize_t)view.width};
            hsize_t down_b[1] = {(hsize_t)view.bottleneck};
            hsize_t up_w[2] = {(hsize_t)view.width, (hsize_t)view.bottleneck};
            hsize_t up_b[1] = {(hsize_t)view.width};
            int status = 0;
            snprintf(text, sizeof text, "%s, %s adapter down-projection weight [bottleneck, width]", what,
                     modality_names[modality]);
            status |= ck_write_dataset(file, block_group, "down_w", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, down_w,
                                       view.down_w, text);
            snprintf(text, sizeof text, "%s, %s adapter down-projection bias [bottleneck]", what,
                     modality_names[modality]);
            if (status == 0)
                status |= ck_write_dataset(file, block_group, "down_b", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1,
                                           down_b, view.down_b, text);
            snprintf(text, sizeof text, "%s, %s adapter up-projection weight [width, bottleneck]", what,
                     modality_names[modality]);
            if (status == 0)
                status |= ck_write_dataset(file, block_group, "up_w", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, up_w,
                                           view.up_w, text);
            snprintf(text, sizeof text, "%s, %s adapter up-projection bias [width]", what,
                     modality_names[modality]);
            if (status == 0)
                status |= ck_write_dataset(file, block_group, "up_b", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, up_b,
                                           view.up_b, text);
            H5Gclose(block_group);
            if (status != 0) {
                H5Gclose(modality_group);
                return -1;
            }
        }
        H5Gclose(modality_group);
    }
    return 0;
}

int ck_read_adapters(const char *file, hid_t h5file, const char *group_path, const clip_config *config,
                     float *adapters)
{
    for (int modality = 0; modality < 2; modality++) {
        int layers = modality == CLIP_VISUAL ? config->vision_layers : config->text_layers;
        for (int block = 0; block < layers; block++) {
            clip_adapter_view view;
            clip_adapter_block(config, adapters, (clip_modality)modality, block, &view);
            hsize_t down_w[2] = {(hsize_t)view.bottleneck, (hsize_t)view.width};
            hsize_t down_b[1] = {(hsize_t)view.bottleneck};
            hsize_t up_w[2] = {(hsize_t)view.width, (hsize_t)view.bottleneck};
            hsize_t up_b[1] = {(hsize_t)view.width};
            const struct {
                const char *name;
                int rank;
                const hsize_t *dims;
                float *out;
            } tensors[4] = {{"down_w", 2, down_w, view.down_w},
                            {"down_b", 1, down_b, view.down_b},
                            {"up_w", 2, up_w, view.up_w},
                            {"up_b", 1, up_b, view.up_b}};
            for (int i = 0; i < 4; i++) {
                char object[512];
                snprintf(object, sizeof object, "%s/%s/block_%02d/%s", group_path, modality_names[modality],
                         block, tensors[i].name);
                DMNSP_TRY(ck_read_dataset(file, h5file, object, H5T_NATIVE_FLOAT, tensors[i].rank,
                                          tensors[i].dims, tensors[i].out));
            }
        }
    }
    return 0;
}
