/* dataset: readers for datasets stored as one image file per sample,
 * TinyImageNet and ImageFolder trees. */
#include "dataset_internal.h"

#include "dmnsp/error.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A growing list of (path, label) samples. */
typedef struct {
    char **paths;
    int *labels;
    long count;
    long capacity;
} sample_list;

static int sample_list_add(sample_list *list, char *path, int label)
{
    if (path == NULL)
        return -1;
    if (list->count == list->capacity) {
        long capacity = list->capacity ? list->capacity * 2 : 1024;
        char **paths = realloc(list->paths, sizeof(char *) * (size_t)capacity);
        if (paths == NULL) {
            free(path);
            return dmnsp_fail("out of memory listing samples");
        }
        list->paths = paths;
        int *labels = realloc(list->labels, sizeof(int) * (size_t)capacity);
        if (labels == NULL) {
            free(path);
            return dmnsp_fail("out of memory listing samples");
        }
        list->labels = labels;
        list->capacity = capacity;
    }
    list->paths[list->count] = path;
    list->labels[list->count] = label;
    list->count++;
    return 0;
}

/* Moves the list into the handle as FILES storage. */
static void sample_list_attach(sample_list *list, dataset *ds)
{
    ds->paths = list->paths;
    ds->labels = list->labels;
    ds->count = list->count;
    ds->storage = DATASET_STORAGE_FILES;
    memset(list, 0, sizeof *list);
}

static void sample_list_free(sample_list *list)
{
    dataset_free_strings(list->paths, list->count);
    free(list->labels);
    memset(list, 0, sizeof *list);
}

/* 1 for names ending in .jpg, .jpeg or .png (any case), -1 for other image
 * formats that cannot be decoded, 0 for anything else. */
static int image_file_kind(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot == NULL)
        return 0;
    static const char *supported[] = {".jpg", ".jpeg", ".png"};
    static const char *unsupported[] = {".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"};
    for (size_t i = 0; i < sizeof supported / sizeof supported[0]; i++)
        if (strcasecmp(dot, supported[i]) == 0)
            return 1;
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (strcasecmp(dot, unsupported[i]) == 0)
            return -1;
    return 0;
}

/* Adds the JPEG and PNG files of FOLDER (sorted by name) with LABEL. Fails
 * when the folder has none or has an image in a format that cannot be read. */
static int add_class_folder(sample_list *list, const char *kind, const char *folder, int label)
{
    char **names = NULL;
    int count = 0;
    if (dataset_list_folder(folder, 0, &names, &count) != 0)
        return dmnsp_fail_prefix("%s", kind);
    int added = 0;
    for (int i = 0; i < count; i++) {
        int file_kind = image_file_kind(names[i]);
        if (file_kind < 0) {
            dmnsp_fail("%s: %s/%s: unsupported image format (expected JPEG or PNG; convert the file)", kind, folder,
                       names[i]);
            dataset_free_strings(names, count);
            return -1;
        }
        if (file_kind == 0)
            continue;
        if (sample_list_add(list, dataset_format("%s/%s", folder, names[i]), label) != 0) {
            dataset_free_strings(names, count);
            return -1;
        }
        added++;
    }
    dataset_free_strings(names, count);
    if (added == 0)
        return dmnsp_fail("%s: %s: class folder contains no JPEG or PNG images", kind, folder);
    return 0;
}

static char *trim(char *text)
{
    while (*text && isspace((unsigned char)*text))
        text++;
    size_t length = strlen(text);
    while (length > 0 && isspace((unsigned char)text[length - 1]))
        text[--length] = '\0';
    return text;
}

/* ------------------------------------------------------------------------
 * TinyImageNet
 * ------------------------------------------------------------------------ */

static int find_wnid(char **wnids, int count, const char *wnid)
{
    for (int i = 0; i < count; i++)
        if (strcmp(wnids[i], wnid) == 0)
            return i;
    return -1;
}

/* Names from words.txt: "<wnid>\t<name>, <other name>, ..." lines; the
 * class name is the first comma-separated entry. */
static int read_tinyimagenet_names(dataset *ds, char **wnids, int count)
{
    char *path = dataset_format("%s/words.txt", ds->root);
    if (path == NULL)
        return -1;
    char **lines = NULL;
    int line_count = 0;
    if (dataset_read_lines(path, &lines, &line_count) != 0) {
        free(path);
        return dmnsp_fail_prefix("tinyimagenet");
    }
    ds->class_names = dmnsp_calloc((size_t)count, sizeof(char *), "class names");
    int status = ds->class_names == NULL ? -1 : 0;
    if (status == 0)
        ds->class_count = count;
    for (int i = 0; status == 0 && i < line_count; i++) {
        char *tab = strchr(lines[i], '\t');
        if (tab == NULL)
            continue;
        *tab = '\0';
        int class_id = find_wnid(wnids, count, trim(lines[i]));
        if (class_id < 0 || ds->class_names[class_id] != NULL)
            continue;
        char *name = tab + 1;
        char *comma = strchr(name, ',');
        if (comma != NULL)
            *comma = '\0';
        ds->class_names[class_id] = strdup(trim(name));
        if (ds->class_names[class_id] == NULL)
            status = dmnsp_fail("out of memory reading %s", path);
    }
    for (int i = 0; status == 0 && i < count; i++)
        if (ds->class_names[i] == NULL)
            status = dmnsp_fail("tinyimagenet: %s: no line for wnid %s (class %d of wnids.txt)", path, wnids[i], i);
    dataset_free_strings(lines, line_count);
    free(path);
    return status;
}

static int read_tinyimagenet_train(dataset *ds, char **wnids, int count, sample_list *list)
{
    for (int i = 0; i < count; i++) {
        char *folder = dataset_format("%s/train/%s/images", ds->root, wnids[i]);
        if (folder == NULL)
            return -1;
        if (!dataset_is_directory(folder)) {
            dmnsp_fail("tinyimagenet: %s: folder not found (expected the training images of class %d, %s)", folder,
                       i, wnids[i]);
            free(folder);
            return -1;
        }
        int status = add_class_folder(list, "tinyimagenet", folder, i);
        free(folder);
        if (status != 0)
            return -1;
    }
    return 0;
}

/* val/val_annotations.txt: "<file>\t<wnid>\t<box>" lines, in file order. */
static int read_tinyimagenet_val(dataset *ds, char **wnids, int count, sample_list *list)
{
    char *path = dataset_format("%s/val/val_annotations.txt", ds->root);
    if (path == NULL)
        return -1;
    char **lines = NULL;
    int line_count = 0;
    if (dataset_read_lines(path, &lines, &line_count) != 0) {
        free(path);
        return dmnsp_fail_prefix("tinyimagenet: validation split");
    }
    int status = 0;
    for (int i = 0; status == 0 && i < line_count; i++) {
        char *file = lines[i];
        char *tab = strchr(file, '\t');
        if (tab == NULL) {
            status = dmnsp_fail("tinyimagenet: %s: line %d has no tab (expected \"<file>\\t<wnid>\\t...\")", path,
                                i + 1);
            break;
        }
        *tab = '\0';
        char *wnid = tab + 1;
        char *end = strchr(wnid, '\t');
        if (end != NULL)
            *end = '\0';
        int class_id = find_wnid(wnids, count, trim(wnid));
        if (class_id < 0) {
            status = dmnsp_fail("tinyimagenet: %s: line %d names wnid '%s', which is not in wnids.txt", path, i + 1,
                                wnid);
            break;
        }
        status = sample_list_add(list, dataset_format("%s/val/images/%s", ds->root, trim(file)), class_id);
    }
    if (status == 0 && list->count == 0)
        status = dmnsp_fail("tinyimagenet: %s: no annotations (expected one line per validation image)", path);
    dataset_free_strings(lines, line_count);
    free(path);
    return status;
}

int dataset_open_tinyimagenet(dataset *ds, const char *root)
{
    char *nested = dataset_format("%s/tiny-imagenet-200", root);
    if (nested == NULL)
        return -1;
    ds->root = dataset_is_directory(nested) ? nested : strdup(root);
    if (ds->root != nested)
        free(nested);
    if (ds->root == NULL)
        return dmnsp_fail("out of memory");

    char *wnids_path = dataset_format("%s/wnids.txt", ds->root);
    if (wnids_path == NULL)
        return -1;
    if (!dataset_is_file(wnids_path)) {
        dmnsp_fail("tinyimagenet: %s: missing (expected the class list of tiny-imagenet-200 under %s)", wnids_path,
                   root);
        free(wnids_path);
        return -1;
    }
    char **wnids = NULL;
    int count = 0;
    int status = dataset_read_lines(wnids_path, &wnids, &count);
    if (status != 0)
        dmnsp_fail_prefix("tinyimagenet");
    for (int i = 0; status == 0 && i < count; i++) {
        char *wnid = trim(wnids[i]);
        memmove(wnids[i], wnid, strlen(wnid) + 1);
        if (wnids[i][0] == '\0')
            status = dmnsp_fail("tinyimagenet: %s: line %d is empty (expected a wnid)", wnids_path, i + 1);
        else if (find_wnid(wnids, i, wnids[i]) >= 0)
            status = dmnsp_fail("tinyimagenet: %s: wnid %s on line %d appears twice", wnids_path, wnids[i], i + 1);
    }
    if (status == 0 && count == 0)
        status = dmnsp_fail("tinyimagenet: %s: no wnids (expected one per line)", wnids_path);
    free(wnids_path);

    if (status == 0)
        status = read_tinyimagenet_names(ds, wnids, count);
    sample_list list = {0};
    if (status == 0)
        status = ds->train ? read_tinyimagenet_train(ds, wnids, count, &list)
                           : read_tinyimagenet_val(ds, wnids, count, &list);
    dataset_free_strings(wnids, count);
    if (status != 0) {
        sample_list_free(&list);
        return -1;
    }
    sample_list_attach(&list, ds);
    return 0;
}

/* ------------------------------------------------------------------------
 * ImageFolder
 * ------------------------------------------------------------------------ */

int dataset_open_imagefolder(dataset *ds, const char *root)
{
    ds->root = strdup(root);
    if (ds->root == NULL)
        return dmnsp_fail("out of memory");
    char *train_folder = dataset_format("%s/train", root);
    if (train_folder == NULL)
        return -1;
    if (!dataset_is_directory(train_folder)) {
        dmnsp_fail("imagefolder: %s: folder not found (expected train/<class>/ and test/<class>/ or val/<class>/ "
                   "under %s)",
                   train_folder, root);
        free(train_folder);
        return -1;
    }

    /* Classes are the train split's folders for both splits. */
    char **classes = NULL;
    int count = 0;
    int status = dataset_list_folder(train_folder, 1, &classes, &count);
    if (status != 0)
        dmnsp_fail_prefix("imagefolder");
    if (status == 0 && count == 0)
        status = dmnsp_fail("imagefolder: %s: no class folders", train_folder);
    char *split_folder = NULL;
    if (status == 0 && ds->train) {
        split_folder = train_folder;
        train_folder = NULL;
    } else if (status == 0) {
        split_folder = dataset_format("%s/test", root);
        if (split_folder != NULL && !dataset_is_directory(split_folder)) {
            free(split_folder);
            split_folder = dataset_format("%s/val", root);
        }
        if (split_folder != NULL && !dataset_is_directory(split_folder))
            status = dmnsp_fail("imagefolder: %s: neither test/ nor val/ exists (expected the test split there)",
                                root);
    }
    free(train_folder);

    /* A test split may lack a class, but not add one. */
    if (status == 0 && !ds->train) {
        char **split_classes = NULL;
        int split_count = 0;
        status = dataset_list_folder(split_folder, 1, &split_classes, &split_count);
        for (int i = 0; status == 0 && i < split_count; i++) {
            int known = 0;
            for (int c = 0; c < count && !known; c++)
                known = strcmp(classes[c], split_classes[i]) == 0;
            if (!known)
                status = dmnsp_fail("imagefolder: %s/%s: class folder not present in train/ (expected the same "
                                    "classes in both splits)",
                                    split_folder, split_classes[i]);
        }
        dataset_free_strings(split_classes, split_count);
    }

    sample_list list = {0};
    for (int c = 0; status == 0 && c < count; c++) {
        char *folder = dataset_format("%s/%s", split_folder, classes[c]);
        if (folder == NULL) {
            status = -1;
            break;
        }
        if (ds->train || dataset_is_directory(folder))
            status = add_class_folder(&list, "imagefolder", folder, c);
        free(folder);
    }
    free(split_folder);
    if (status == 0 && list.count == 0)
        status = dmnsp_fail("imagefolder: %s: the test split has no images", root);
    if (status != 0) {
        dataset_free_strings(classes, count);
        sample_list_free(&list);
        return -1;
    }
    sample_list_attach(&list, ds);
    ds->class_names = classes;
    ds->class_count = count;
    return 0;
}
