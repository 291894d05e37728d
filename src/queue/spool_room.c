/*
 * spool_room.c: whether the spool has room for one more message, and the
 * reserve that lets it recover when its filesystem fills up anyway.
 *
 * Owns sp_queue_has_room and queue__room_* and queue__reserve_* (see
 * queue_int.h).  Nothing here runs unless the spool was opened with a
 * free-space threshold (options.min_free_bytes); without one, the disk
 * filling up is only found by the writes that fail.
 *
 * Room.  A message costs the spool about twice its size before the space
 * settles: once in SQLite's write-ahead log and once in the database
 * file when the log is copied back (checkpointed).  So the space the
 * spool can count on is the filesystem's free space, plus the pages
 * SQLite keeps free inside the database for reuse, minus what the log
 * still owes the database file; and a message of n octets is taken only
 * while that stays above the threshold plus 2n.  The answer is measured
 * at most every QUEUE_ROOM_CACHE_MS; between measurements each message
 * taken is subtracted from it, so a burst cannot overrun the threshold.
 *
 * Reserve.  The filesystem can still fill up behind the spool's back (a
 * log file, another program).  Then even a delete, which has to append
 * to the log, or a checkpoint, which may have to grow the database file,
 * fails with "database or disk is full", and the operator could not free
 * space by removing messages.  So the spool keeps a file, "reserve", of
 * QUEUE_RESERVE_* size, allocated on disk.  A delete or a checkpoint that
 * fails for lack of space removes it and tries again; the spool then has
 * no room until the reserve has been made again, which happens at the
 * next measurement that finds space enough for it and the threshold.
 */
#include "queue_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* The reserve's path in dir; false when it would not fit in path. */
static bool
room_reserve_path(const char *dir, char path[PATH_MAX])
{
    int len = snprintf(path, PATH_MAX, "%s/reserve", dir);

    return len > 0 && len < PATH_MAX;
}

uint64_t
queue__reserve_size(const sp_queue_options *options)
{
    uint64_t size = options->min_free_bytes / 2;

    return size < QUEUE_RESERVE_MAX ? size : QUEUE_RESERVE_MAX;
}

/*
 * Make the reserve file, or complete one that is shorter than size (a
 * crash while it was made).  posix_fallocate gives it real blocks, not a
 * sparse hole, so removing it gives them back.  True when it is there.
 */
bool
queue__reserve_make(const char *dir, uint64_t size)
{
    char path[PATH_MAX];
    struct stat st;
    int fd, rc;

    if (size == 0)
        return true;
    if (!room_reserve_path(dir, path))
        return false;
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= size) {
        close(fd);
        return true;
    }
    rc = posix_fallocate(fd, 0, (off_t)size);
    close(fd);
    if (rc != 0)
        unlink(path);
    return rc == 0;
}

/*
 * Remove the reserve file, giving its space back; true when there was
 * one to remove.  Any process may do this (the command line's deletes).
 */
bool
queue__reserve_release(const char *dir)
{
    char path[PATH_MAX];

    return room_reserve_path(dir, path) && unlink(path) == 0;
}

/* Whether the reserve file is there at its full size. */
static bool
room_reserve_present(const char *dir, uint64_t size)
{
    char path[PATH_MAX];
    struct stat st;

    return room_reserve_path(dir, path) && stat(path, &st) == 0 &&
           (uint64_t)st.st_size >= size;
}

/* Octets as a signed count, clamped (no filesystem comes near it). */
static int64_t
room_octets(uint64_t octets)
{
    return octets > (uint64_t)INT64_MAX / 4 ? INT64_MAX / 4 : (int64_t)octets;
}

/*
 * Measure the space the spool can count on; caller holds room_lock.
 * Sets queue->room_free (INT64_MAX when the filesystem cannot say, -1
 * when the reserve is missing and cannot be made again).
 */
static void
room_measure(sp_queue *queue, int64_t now)
{
    uint64_t reserve = queue__reserve_size(&queue->options);
    uint64_t reusable = 0;
    int64_t free_bytes, owed;
    struct statvfs fs;

    queue->room_checked_ms = now;
    queue->room_known = true;
    if (statvfs(queue->dir, &fs) != 0) {
        /* If the question cannot be asked, let the writes find out. */
        queue->room_free = INT64_MAX;
        return;
    }

    /* Free blocks, plus free pages inside, minus what the log owes. */
    pthread_mutex_lock(&queue->reader_lock);
    (void)queue__db_reusable_bytes(queue->reader, &reusable);
    pthread_mutex_unlock(&queue->reader_lock);
    owed = room_octets((uint64_t)atomic_load(&queue->wal_pages) *
                       queue->wal_frame_bytes);
    free_bytes = room_octets((uint64_t)fs.f_bavail * fs.f_frsize) +
                 room_octets(reusable) - owed;

    /* Without its reserve the spool takes nothing: see the top. */
    if (!room_reserve_present(queue->dir, reserve)) {
        if (free_bytes < room_octets(queue->options.min_free_bytes) +
                             room_octets(reserve) ||
            !queue__reserve_make(queue->dir, reserve))
            free_bytes = -1;
        else
            free_bytes -= room_octets(reserve);
    }
    queue->room_free = free_bytes;
}

/*
 * Whether a message of octets fits above the threshold; when take, the
 * space it will use is counted as gone until the next measurement.
 */
bool
queue__room_take(sp_queue *queue, uint64_t octets, bool take)
{
    int64_t now = queue__clock_ms(CLOCK_MONOTONIC);
    int64_t need;
    bool room;

    if (queue->options.min_free_bytes == 0)
        return true;
    need = room_octets(queue->options.min_free_bytes) + 2 * room_octets(octets);

    pthread_mutex_lock(&queue->room_lock);
    if (!queue->room_known ||
        now - queue->room_checked_ms >= QUEUE_ROOM_CACHE_MS)
        room_measure(queue, now);
    room = queue->room_free >= need;
    if (room && take && queue->room_free != INT64_MAX)
        queue->room_free -= 2 * room_octets(octets);
    pthread_mutex_unlock(&queue->room_lock);
    return room;
}

bool
sp_queue_has_room(sp_queue *queue, uint64_t octets)
{
    return queue__room_take(queue, octets, false);
}

void
queue__room_forget(sp_queue *queue)
{
    pthread_mutex_lock(&queue->room_lock);
    queue->room_known = false;
    pthread_mutex_unlock(&queue->room_lock);
}
