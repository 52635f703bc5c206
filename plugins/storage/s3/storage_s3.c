/*
 * storage/s3: objects in an Amazon S3 bucket (or any S3-compatible service through
 * `endpoint`), virtual-hosted-style URLs by default. Everything but the descriptor lives in
 * the shared library plugins/storage/s3common (README.md: configuration).
 */
#include "config.h"

#include <sandbox/core.h>
#include <sandbox/storage.h>

#include "plugins/storage/s3common/s3common.h"

static int create(const struct sbx_core_api *core, const char *instance_name, const json_t *config,
		  void **inst, sbx_err *err)
{
	return s3c_create(core, instance_name, config, S3_VARIANT_AWS, inst, err);
}

static const struct sbx_storage_plugin descriptor = {
    .hdr = SBX_PLUGIN_HEADER(SBX_KIND_STORAGE, struct sbx_storage_plugin, "s3", "1.0.0",
			     "objects in an Amazon S3 bucket (SigV4, multipart, presigned GET)"),
    .life =
	{
	    .create = create,
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
