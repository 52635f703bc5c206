/*
 * storage/minio: objects in a MinIO (or other S3-compatible) bucket addressed path-style at
 * a required `endpoint`; the bucket is created at start() when it is missing. Everything
 * but the descriptor lives in plugins/storage/s3common (README.md: configuration).
 */
#include "config.h"

#include <sandbox/core.h>
#include <sandbox/storage.h>

#include "plugins/storage/s3common/s3common.h"

static int create(const struct sbx_core_api *core, const char *instance_name, const json_t *config,
		  void **inst, sbx_err *err)
{
	return s3c_create(core, instance_name, config, S3_VARIANT_MINIO, inst, err);
}

/* Main thread, before requests are served: make sure the bucket exists. */
static int start(void *inst, sbx_err *err)
{
	return s3_ensure_bucket(inst, err);
}

static const struct sbx_storage_plugin descriptor = {
    .hdr = SBX_PLUGIN_HEADER(SBX_KIND_STORAGE, struct sbx_storage_plugin, "minio", "1.0.0",
			     "objects in a MinIO bucket (path-style S3, bucket bootstrap)"),
    .life =
	{
	    .create = create,
	    .start = start,
	    .destroy = s3c_destroy,
	},
    .put = s3_put,
    .get = s3_get,
    .head = s3_head,
    .list = s3_list,
    .del = s3_del,
    .del_prefix = s3_del_prefix,
    .presign_get = s3_presign_get,
    .health = s3_health,
};

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void);

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void)
{
	return &descriptor.hdr;
}
