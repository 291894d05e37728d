/*
 * mailbox.c: handing work from other threads to the event loop.
 *
 * Owns daemon_mailbox_*.  The spool's writer thread reports each durable
 * message from its own thread, but only the loop may touch sessions and
 * sockets.  Posts go on a list under a mutex and an eventfd wakes the
 * loop, which runs them in the order they came.
 */
#include "daemon.h"

#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct mailbox_item {
    void (*run)(void *arg);
    void *arg;
    struct mailbox_item *next;
};

/* Run everything posted so far, on the loop. */
static void
mailbox_ready(evutil_socket_t fd, short what, void *arg)
{
    struct daemon_mailbox *box = arg;
    struct mailbox_item *items;
    uint64_t count;

    (void)what;
    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        sp_log_warning("mailbox error=\"%s\"", strerror(errno));

    pthread_mutex_lock(&box->lock);
    items = box->head;
    box->head = box->tail = NULL;
    pthread_mutex_unlock(&box->lock);

    while (items != NULL) {
        struct mailbox_item *next = items->next;

        items->run(items->arg);
        sp_free(items);
        items = next;
    }
}

int
daemon_mailbox_init(struct daemon_mailbox *box, struct event_base *base,
                    sp_error *err)
{
    memset(box, 0, sizeof(*box));
    box->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (box->fd < 0)
        return sp_err_set(err, SP_EIO, "eventfd: %s", strerror(errno));
    if (pthread_mutex_init(&box->lock, NULL) != 0) {
        close(box->fd);
        return sp_err_set(err, SP_EIO, "cannot make a mutex");
    }
    box->event =
        event_new(base, box->fd, EV_READ | EV_PERSIST, mailbox_ready, box);
    if (box->event == NULL || event_add(box->event, NULL) != 0) {
        daemon_mailbox_free(box);
        return sp_err_set(err, SP_EIO, "cannot watch the mailbox");
    }
    return SP_OK;
}

void
daemon_mailbox_post(struct daemon_mailbox *box, void (*run)(void *arg),
                    void *arg)
{
    struct mailbox_item *item = sp_malloc(sizeof(*item));
    uint64_t one = 1;

    /*
     * Without memory the work is lost and its session waits until its
     * timer closes it; the message itself is on disk either way.
     */
    if (item == NULL) {
        sp_log_error("mailbox error=\"out of memory\"");
        return;
    }
    item->run = run;
    item->arg = arg;
    item->next = NULL;

    pthread_mutex_lock(&box->lock);
    if (box->tail != NULL)
        box->tail->next = item;
    else
        box->head = item;
    box->tail = item;
    pthread_mutex_unlock(&box->lock);
    if (write(box->fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        sp_log_warning("mailbox error=\"%s\"", strerror(errno));
}

void
daemon_mailbox_free(struct daemon_mailbox *box)
{
    struct mailbox_item *item = box->head;

    /* What was posted still runs: it frees what it carries. */
    box->head = box->tail = NULL;
    while (item != NULL) {
        struct mailbox_item *next = item->next;

        item->run(item->arg);
        sp_free(item);
        item = next;
    }
    if (box->event != NULL)
        event_free(box->event);
    box->event = NULL;
    if (box->fd >= 0)
        close(box->fd);
    box->fd = -1;
    pthread_mutex_destroy(&box->lock);
}
