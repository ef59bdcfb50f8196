#ifndef CG_UTIL_LIST_H
#define CG_UTIL_LIST_H
/* Intrusive doubly-linked list, and the one container_of to recover owners
 * from embedded nodes and libuv handles. */
#include <stddef.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

typedef struct cg_list {
  struct cg_list *prev, *next;
} cg_list_t;

static inline void cg_list_init(cg_list_t *l) { l->prev = l->next = l; }
static inline int cg_list_empty(const cg_list_t *l) { return l->next == l; }
static inline void cg_list_push(cg_list_t *head, cg_list_t *item) {
  item->next = head;
  item->prev = head->prev;
  head->prev->next = item;
  head->prev = item;
}
static inline void cg_list_remove(cg_list_t *item) {
  item->prev->next = item->next;
  item->next->prev = item->prev;
  item->prev = item->next = item;
}

#endif
