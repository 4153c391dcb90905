/*
 * sandbox_quota.c - the disk quota of a work directory: a file system of
 * its own, so that the kernel, not the daemon, stops a stage at its size.
 *
 * How: a sparse image file of the quota's size in the daemon's state
 * directory, an ext4 file system made in it by mke2fs (no journal, no
 * reserved blocks, root directory owned by the sandbox's uid; ~20 ms for
 * 2 GiB here), attached to a free loop device (LOOP_CTL_GET_FREE +
 * LOOP_CONFIGURE with autoclear, so the device goes away with the mount)
 * and mounted nosuid,nodev on the work directory.  Only the blocks written
 * take disk space.  A stage writing past the size gets ENOSPC; the node's
 * own file system is untouched.  Removal unmounts (lazily if something
 * still holds it) and deletes the image.
 *
 * Why not the alternatives (measured or tried here): a size-limited tmpfs
 * costs memory, not disk, for every byte of the quota; project quotas need
 * the node's file system mounted with prjquota, which we cannot assume.
 *
 * Needs root (or CAP_SYS_ADMIN), mke2fs (e2fsprogs) and /dev/loop-control;
 * sbx_quota_usable says which is missing.  Runs on the libuv threadpool
 * (mke2fs is waited for with waitpid on its own pid, which libuv's SIGCHLD
 * handling leaves alone).
 *
 * Failure modes: every step reports the step and errno; a failed create
 * undoes what it did.  Two daemons racing for one loop device: EBUSY on
 * configure, retried with the next free device.
 */
#include "node/worker/sandbox_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOOP_TRIES       16
#define FULL_BELOW_BYTES (256u * 1024u)
#define MKE2FS_ERR_BYTES 512

extern char **environ;

bool sbx_quota_usable(char *why, size_t why_len)
{
	if (geteuid() != 0) {
		snprintf(why, why_len, "disk quota needs root (loop mounts)");
		return false;
	}
	if (access(SANDBOX_MKE2FS_PATH, X_OK) != 0) {
		snprintf(why, why_len, "disk quota needs %s (e2fsprogs)", SANDBOX_MKE2FS_PATH);
		return false;
	}
	if (access("/dev/loop-control", R_OK | W_OK) != 0) {
		snprintf(why, why_len, "disk quota needs /dev/loop-control: %s", strerror(errno));
		return false;
	}
	return true;
}

/* Runs mke2fs on the image; 0 or ING_EIO with its stderr in e. */
static int make_fs(const char *image, uint32_t uid, struct ing_error *e)
{
	char owner[64];
	snprintf(owner, sizeof(owner), "lazy_itable_init=1,nodiscard,root_owner=%u:%u", uid, uid);
	const char *argv[] = {"mke2fs", "-q",           "-F", "-t",  "ext4", "-m", "0",
	                      "-O",     "^has_journal", "-E", owner, image,  NULL};
	int errp[2];
	if (pipe2(errp, O_CLOEXEC) != 0)
		return ing_error_set(e, ING_EIO, "mke2fs: cannot create a pipe: %s",
		                     strerror(errno));
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	const char *env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
	pid_t pid;
	int rv = posix_spawn(&pid, SANDBOX_MKE2FS_PATH, &fa, NULL, (char *const *)argv,
	                     (char *const *)env);
	posix_spawn_file_actions_destroy(&fa);
	close(errp[1]);
	if (rv != 0) {
		close(errp[0]);
		return ing_error_set(e, ING_EIO, "cannot run %s: %s", SANDBOX_MKE2FS_PATH,
		                     strerror(rv));
	}
	char err[MKE2FS_ERR_BYTES];
	size_t got = 0;
	for (;;) {
		ssize_t n = read(errp[0], err + got, sizeof(err) - 1 - got);
		if (n > 0 && got + (size_t)n < sizeof(err) - 1) {
			got += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	close(errp[0]);
	err[got] = '\0';
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		while (got > 0 && (err[got - 1] == '\n' || err[got - 1] == ' '))
			err[--got] = '\0';
		return ing_error_set(e, ING_EIO, "mke2fs failed on %s: %s", image,
		                     got > 0 ? err : "no message");
	}
	return 0;
}

/* Attaches the image to a free loop device; its fd in *out. */
static int attach_loop(const char *image, int *out, char *dev, size_t dev_cap, struct ing_error *e)
{
	int img = open(image, O_RDWR | O_CLOEXEC);
	if (img < 0)
		return ing_error_set(e, ING_EIO, "cannot open image %s: %s", image,
		                     strerror(errno));
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		int err = errno;
		close(img);
		return ing_error_set(e, ING_EIO, "cannot open /dev/loop-control: %s",
		                     strerror(err));
	}
	int rv = ING_EIO;
	for (int tries = 0; tries < LOOP_TRIES; tries++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			rv = ing_error_set(e, ING_EIO, "no free loop device: %s", strerror(errno));
			break;
		}
		snprintf(dev, dev_cap, "/dev/loop%d", n);
		int fd = open(dev, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			rv = ing_error_set(e, ING_EIO, "cannot open %s: %s", dev, strerror(errno));
			if (errno == ENOENT || errno == EBUSY)
				continue;
			break;
		}
		struct loop_config lc;
		memset(&lc, 0, sizeof(lc));
		lc.fd = (uint32_t)img;
		lc.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		if (ioctl(fd, LOOP_CONFIGURE, &lc) == 0) {
			*out = fd;
			rv = 0;
			break;
		}
		int err = errno;
		close(fd);
		rv = ing_error_set(e, ING_EIO, "cannot attach %s to %s: %s", image, dev,
		                   strerror(err));
		if (err != EBUSY)
			break;
	}
	close(ctl);
	close(img);
	return rv;
}

int sbx_quota_create(const char *image, uint64_t bytes, const char *dir, uint32_t uid,
                     struct ing_error *e)
{
	int fd = open(image, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return ing_error_set(e, ING_EIO, "cannot create image %s: %s", image,
		                     strerror(errno));
	if (ftruncate(fd, (off_t)bytes) != 0) {
		int err = errno;
		close(fd);
		unlink(image);
		return ing_error_set(e, ING_EIO, "cannot size image %s: %s", image, strerror(err));
	}
	close(fd);
	int rv = make_fs(image, uid, e);
	if (rv != 0) {
		unlink(image);
		return rv;
	}
	char dev[32];
	int loop_fd = -1;
	rv = attach_loop(image, &loop_fd, dev, sizeof(dev), e);
	if (rv != 0) {
		unlink(image);
		return rv;
	}
	if (mount(dev, dir, "ext4", MS_NOSUID | MS_NODEV | MS_NOATIME, "") != 0) {
		int err = errno;
		close(loop_fd); /* autoclear: detached on this close */
		unlink(image);
		return ing_error_set(e, ING_EIO, "cannot mount %s on %s: %s", dev, dir,
		                     strerror(err));
	}
	close(loop_fd); /* the mount holds the device now */
	char lf[SBX_PATH_MAX + 16];
	snprintf(lf, sizeof(lf), "%s/lost+found", dir);
	rmdir(lf);
	if (chmod(dir, 0700) != 0) {
		int err = errno;
		sbx_quota_remove(image, dir, NULL);
		return ing_error_set(e, ING_EIO, "cannot chmod %s: %s", dir, strerror(err));
	}
	return 0;
}

int sbx_quota_remove(const char *image, const char *dir, struct ing_error *e)
{
	int rv = 0;
	if (sbx_is_mount_point(dir) && umount2(dir, UMOUNT_NOFOLLOW) != 0) {
		if (errno == EBUSY && umount2(dir, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
			;
		else
			rv = ing_error_set(e, ING_EIO, "cannot unmount %s: %s", dir,
			                   strerror(errno));
	}
	if (unlink(image) != 0 && errno != ENOENT && rv == 0)
		rv =
		    ing_error_set(e, ING_EIO, "cannot delete image %s: %s", image, strerror(errno));
	return rv;
}

bool sbx_quota_full(const char *dir)
{
	struct statvfs st;
	if (statvfs(dir, &st) != 0)
		return false;
	return (uint64_t)st.f_bavail * st.f_frsize < FULL_BELOW_BYTES;
}

/* Undoes mountinfo's octal escapes (\040 for a space...) in place. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r != '\0'; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

bool sbx_is_mount_point(const char *dir)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (f == NULL)
		return false;
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		/* id parent major:minor root mountpoint ... */
		char *save = NULL, *tok = strtok_r(line, " ", &save);
		for (int i = 0; tok != NULL && i < 4; i++)
			tok = strtok_r(NULL, " ", &save);
		if (tok == NULL)
			continue;
		unescape(tok);
		found = strcmp(tok, dir) == 0;
	}
	fclose(f);
	return found;
}
