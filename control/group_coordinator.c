/* group_coordinator.c - the classic group protocol (JoinGroup / SyncGroup / Heartbeat /
 * LeaveGroup) as Kafka's GroupCoordinator runs it, on the control thread.
 *
 * States. Empty (no members; offsets kept) -> PreparingRebalance (a member joined, left,
 * changed its protocols, or the leader rejoined: every member must rejoin) ->
 * CompletingRebalance (all rejoined, or the rebalance timeout passed and the stragglers
 * were removed: a new generation, the leader got every member's subscription and is
 * computing the assignment) -> Stable (the leader's SyncGroup delivered every member's
 * assignment). Dead is a deleted group on its way out. The broker never looks inside
 * the protocol metadata or the assignments: range, roundrobin, sticky and
 * cooperative-sticky are the clients' business; the broker picks the protocol every
 * member supports that most members prefer, and relays bytes.
 *
 * Waiting. A JoinGroup in PreparingRebalance and a SyncGroup in CompletingRebalance are
 * parked: the member holds the caller's waiter (a control job) and the answer goes out
 * through struct group_replies when the rebalance completes, when the leader's
 * assignment arrives, or with an error when the member is removed or the rebalance
 * restarts. One waiter of each kind per member; the connection that sent it is muted
 * until it is answered, so waiters are bounded by connections.
 *
 * Members. A new member's first JoinGroup (v4+) gets MEMBER_ID_REQUIRED with the id it
 * must use; it is kept as a pending member until it rejoins or its session timeout
 * passes. A static member (group.instance.id) skips that step and keeps its identity
 * across restarts: rejoining with a new member id replaces the old one (whose parked
 * requests get FENCED_INSTANCE_ID), and in a Stable group with unchanged protocols it
 * gets the current generation back at once -- its assignment stays, the others see no
 * rebalance. A request naming an instance with another member id is fenced.
 *
 * Timers (group_tick): a member not heard from (heartbeat, join, sync, commit) for its
 * session timeout is removed, except while it waits in a parked request; a pending
 * member likewise. PreparingRebalance ends at the largest member rebalance timeout with
 * whoever rejoined; a group leaving Empty waits group.initial.rebalance.delay.ms first
 * (extended by each new member, up to the rebalance timeout) so a fleet of consumers
 * starting together lands in one generation. CompletingRebalance without the leader's
 * SyncGroup for a rebalance timeout removes the members that did not sync and
 * rebalances again. An Empty group's offsets expire offsets.retention.minutes after it
 * became empty (or after its last commit, if later), and the group goes with them.
 *
 * Memory: groups and members are malloc'd on this slow path, bounded by GROUP_MAX_GROUPS
 * and min(group.max.size, GROUP_MAX_MEMBERS); lookups walk short lists. */
#include "control/group_coordinator.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hw/log.h"

static const char *const state_names[] = {"Empty", "PreparingRebalance", "CompletingRebalance",
                                          "Stable", "Dead"};

const char *group_state_name(enum group_state s) {
    assert(s >= GROUP_EMPTY && s <= GROUP_DEAD);
    return state_names[s];
}

int group_state_parse(const char *name, size_t len) {
    for (int i = 0; i <= GROUP_DEAD; i++)
        if (strlen(state_names[i]) == len && strncasecmp(state_names[i], name, len) == 0)
            return i;
    return -1;
}

static char *dup_n(const char *s, size_t len) {
    char *d = malloc(len + 1);
    if (!d) return NULL;
    if (len) memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

static bool str_is(const char *a, const char *b, size_t b_len) {
    return a && strlen(a) == b_len && memcmp(a, b, b_len) == 0;
}

/* ---- lifetime ---------------------------------------------------------------------- */

void group_coordinator_init(struct group_coordinator *gc, const struct group_config *cfg,
                            const struct group_replies *replies) {
    memset(gc, 0, sizeof *gc);
    gc->cfg = *cfg;
    gc->replies = *replies;
}

static void protocols_free(struct group_member *m) {
    for (int i = 0; i < m->protocol_count; i++) {
        free(m->protocols[i].name);
        free(m->protocols[i].metadata);
    }
    m->protocol_count = 0;
}

static void member_free(struct group_member *m) {
    protocols_free(m);
    free(m->member_id);
    free(m->instance_id);
    free(m->client_id);
    free(m->client_host);
    free(m->assignment);
    free(m);
}

static void group_free(struct group *g) {
    while (g->members) {
        struct group_member *m = g->members;
        g->members = m->next;
        member_free(m);
    }
    group_offsets_free(&g->offsets);
    free(g->group_id);
    free(g->protocol_type);
    free(g->protocol_name);
    free(g);
}

void group_coordinator_destroy(struct group_coordinator *gc) {
    while (gc->groups) {
        struct group *g = gc->groups;
        gc->groups = g->next;
        group_free(g);
    }
    memset(gc, 0, sizeof *gc);
}

struct group *group_find(struct group_coordinator *gc, const char *group_id, size_t len) {
    for (struct group *g = gc->groups; g; g = g->next)
        if (str_is(g->group_id, group_id, len)) return g;
    return NULL;
}

struct group *group_get_or_create(struct group_coordinator *gc, const char *group_id,
                                  size_t len, uint64_t now_ms) {
    struct group *g = group_find(gc, group_id, len);
    if (g) return g;
    if (gc->group_count >= GROUP_MAX_GROUPS || len == 0 || len > GROUP_ID_MAX_BYTES) return NULL;
    g = calloc(1, sizeof *g);
    if (!g || !(g->group_id = dup_n(group_id, len))) {
        free(g);
        return NULL;
    }
    g->state = GROUP_EMPTY;
    g->empty_since_ms = now_ms;
    group_offsets_init(&g->offsets);
    g->next = gc->groups;
    gc->groups = g;
    gc->group_count++;
    return g;
}

static void group_unlink(struct group_coordinator *gc, struct group *g) {
    for (struct group **pp = &gc->groups; *pp; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            gc->group_count--;
            return;
        }
    }
    assert(!"group not in the list");
}

struct group_member *group_member_find(struct group *g, const char *member_id, size_t len) {
    for (struct group_member *m = g->members; m; m = m->next)
        if (str_is(m->member_id, member_id, len)) return m;
    return NULL;
}

static struct group_member *member_by_instance(struct group *g, const char *instance_id,
                                               size_t len) {
    for (struct group_member *m = g->members; m; m = m->next)
        if (str_is(m->instance_id, instance_id, len)) return m;
    return NULL;
}

void group_new_member_id(struct group_coordinator *gc, const char *client_id, char *out) {
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s", client_id && *client_id ? client_id : "member");
    snprintf(out, GROUP_NAME_MAX_BYTES + 1, "%s-%016llx", prefix,
             (unsigned long long)++gc->member_seq * 0x9E3779B97F4A7C15ull);
}

/* ---- answers ----------------------------------------------------------------------- */

static void note_answered(struct group_coordinator *gc, void *waiter) {
    if (waiter == gc->current_waiter) gc->current_answered = true;
}

static void answer_join_error(struct group_coordinator *gc, void *waiter, int16_t version,
                              int16_t error_code, const char *member_id) {
    note_answered(gc, waiter);
    struct group_join_answer a = {.error_code = error_code, .generation_id = -1,
                                  .member_id = member_id ? member_id : "", .leader_id = ""};
    gc->replies.join(gc->replies.ctx, waiter, version, &a);
}

static void answer_join(struct group_coordinator *gc, struct group *g, struct group_member *m,
                        void *waiter, int16_t version, bool skip_assignment) {
    note_answered(gc, waiter);
    struct group_join_answer a = {
        .error_code = GROUP_ERR_NONE, .generation_id = g->generation_id,
        .protocol_type = g->protocol_type, .protocol_name = g->protocol_name,
        .leader_id = g->leader ? g->leader->member_id : "", .member_id = m->member_id,
        .group = g, .is_leader = m == g->leader, .skip_assignment = skip_assignment};
    gc->replies.join(gc->replies.ctx, waiter, version, &a);
}

static void answer_sync(struct group_coordinator *gc, struct group *g, void *waiter,
                        int16_t error_code, const uint8_t *assignment, uint32_t bytes) {
    note_answered(gc, waiter);
    gc->replies.sync(gc->replies.ctx, waiter, error_code, g, assignment, bytes);
}

/* A member's parked requests, answered with an error (it left, was fenced or removed). */
static void fail_waiters(struct group_coordinator *gc, struct group *g, struct group_member *m,
                         int16_t error_code) {
    if (m->join_waiter) {
        void *w = m->join_waiter;
        m->join_waiter = NULL;
        answer_join_error(gc, w, m->join_version, error_code, m->member_id);
    }
    if (m->sync_waiter) {
        void *w = m->sync_waiter;
        m->sync_waiter = NULL;
        answer_sync(gc, g, w, error_code, NULL, 0);
    }
}

/* ---- protocols ------------------------------------------------------------------- */

static bool member_offers(const struct group_member *m, const char *name) {
    for (int i = 0; i < m->protocol_count; i++)
        if (strcmp(m->protocols[i].name, name) == 0) return true;
    return false;
}

/* Can a member offering a's protocols join g? Kafka: same protocol type, and at least
 * one protocol every current (joined) member offers too. */
static bool protocols_compatible(const struct group *g, const struct group_join_args *a,
                                 const struct group_member *self) {
    if (g->member_count == 0 || (g->member_count == 1 && self && !self->pending)) return true;
    if (g->protocol_type && !str_is(g->protocol_type, a->protocol_type, a->protocol_type_len))
        return false;
    for (int i = 0; i < a->protocol_count; i++) {
        char name[GROUP_NAME_MAX_BYTES + 1];
        size_t n = a->protocol_name_lens[i];
        memcpy(name, a->protocol_names[i], n);
        name[n] = '\0';
        bool everyone = true;
        for (const struct group_member *m = g->members; m && everyone; m = m->next)
            if (!m->pending && m != self) everyone = member_offers(m, name);
        if (everyone) return true;
    }
    return false;
}

static bool protocols_equal(const struct group_member *m, const struct group_join_args *a) {
    if (m->protocol_count != a->protocol_count) return false;
    for (int i = 0; i < a->protocol_count; i++) {
        const struct group_protocol *p = &m->protocols[i];
        if (!str_is(p->name, a->protocol_names[i], a->protocol_name_lens[i]) ||
            p->metadata_bytes != a->protocol_metadata_bytes[i] ||
            (p->metadata_bytes && memcmp(p->metadata, a->protocol_metadata[i], p->metadata_bytes)))
            return false;
    }
    return true;
}

/* Replace m's protocols and timeouts with the request's. false when out of memory. */
static bool member_update(struct group_member *m, const struct group_join_args *a,
                          uint64_t now_ms) {
    protocols_free(m);
    for (int i = 0; i < a->protocol_count; i++) {
        struct group_protocol *p = &m->protocols[i];
        p->name = dup_n(a->protocol_names[i], a->protocol_name_lens[i]);
        p->metadata = malloc(a->protocol_metadata_bytes[i] ? a->protocol_metadata_bytes[i] : 1);
        m->protocol_count = i + 1;
        if (!p->name || !p->metadata) return false;
        if (a->protocol_metadata_bytes[i])
            memcpy(p->metadata, a->protocol_metadata[i], a->protocol_metadata_bytes[i]);
        p->metadata_bytes = a->protocol_metadata_bytes[i];
    }
    m->session_timeout_ms = a->session_timeout_ms;
    m->rebalance_timeout_ms = a->rebalance_timeout_ms;
    m->last_seen_ms = now_ms;
    return true;
}

/* The protocol every member offers that most members list first among those. */
static char *select_protocol(const struct group *g) {
    const struct group_member *first = NULL;
    for (const struct group_member *m = g->members; m && !first; m = m->next)
        if (!m->pending) first = m;
    assert(first);
    const char *best = NULL;
    int best_votes = -1;
    for (int i = 0; i < first->protocol_count; i++) {
        const char *cand = first->protocols[i].name;
        bool everyone = true;
        for (const struct group_member *m = g->members; m && everyone; m = m->next)
            if (!m->pending) everyone = member_offers(m, cand);
        if (!everyone) continue;
        int votes = 0;
        for (const struct group_member *m = g->members; m; m = m->next) {
            if (m->pending) continue;
            for (int k = 0; k < m->protocol_count; k++) { /* its first supported choice */
                bool supported = true;
                for (const struct group_member *o = g->members; o && supported; o = o->next)
                    if (!o->pending) supported = member_offers(o, m->protocols[k].name);
                if (!supported) continue;
                votes += strcmp(m->protocols[k].name, cand) == 0;
                break;
            }
        }
        if (votes > best_votes) {
            best = cand;
            best_votes = votes;
        }
    }
    return best ? dup_n(best, strlen(best)) : NULL;
}

const struct group_protocol *group_member_protocol(const struct group *g,
                                                   const struct group_member *m) {
    if (!g->protocol_name) return NULL;
    for (int i = 0; i < m->protocol_count; i++)
        if (strcmp(m->protocols[i].name, g->protocol_name) == 0) return &m->protocols[i];
    return NULL;
}

/* ---- rebalance --------------------------------------------------------------------- */

static void clear_assignment(struct group_member *m) {
    free(m->assignment);
    m->assignment = NULL;
    m->assignment_bytes = 0;
}

static int32_t max_rebalance_timeout_ms(const struct group *g) {
    int32_t t = 0;
    for (const struct group_member *m = g->members; m; m = m->next)
        if (!m->pending && m->rebalance_timeout_ms > t) t = m->rebalance_timeout_ms;
    return t;
}

static void prepare_rebalance(struct group_coordinator *gc, struct group *g, uint64_t now_ms,
                              const char *reason) {
    if (g->state == GROUP_COMPLETING_REBALANCE) /* the leader's assignment is moot now */
        for (struct group_member *m = g->members; m; m = m->next)
            if (m->sync_waiter) {
                void *w = m->sync_waiter;
                m->sync_waiter = NULL;
                answer_sync(gc, g, w, GROUP_ERR_REBALANCE_IN_PROGRESS, NULL, 0);
            }
    bool from_empty = g->state == GROUP_EMPTY;
    g->state = GROUP_PREPARING_REBALANCE;
    g->rebalance_start_ms = now_ms;
    g->rebalance_deadline_ms = now_ms + (uint64_t)max_rebalance_timeout_ms(g);
    g->initial_delay_until_ms = 0;
    if (from_empty && gc->cfg.initial_rebalance_delay_ms > 0) {
        uint64_t until = now_ms + (uint64_t)gc->cfg.initial_rebalance_delay_ms;
        g->initial_delay_until_ms =
            until < g->rebalance_deadline_ms ? until : g->rebalance_deadline_ms;
    }
    log_info("group_rebalance", "group=%s generation=%d members=%u reason=%s", g->group_id,
             g->generation_id, g->member_count, reason);
}

static void remove_member(struct group_coordinator *gc, struct group *g, struct group_member *m,
                          int16_t waiter_error);

/* Everyone rejoined (or time is up): the next generation. Members that did not rejoin
 * are removed first. */
static void complete_join(struct group_coordinator *gc, struct group *g, uint64_t now_ms) {
    assert(g->state == GROUP_PREPARING_REBALANCE);
    struct group_member *m = g->members;
    while (m) {
        struct group_member *next = m->next;
        if (!m->pending && !m->join_waiter) {
            log_info("group_member_removed", "group=%s member=%s reason=not-rejoined",
                     g->group_id, m->member_id);
            remove_member(gc, g, m, GROUP_ERR_UNKNOWN_MEMBER_ID);
        }
        m = next;
    }
    g->generation_id++;
    free(g->protocol_name);
    g->protocol_name = NULL;
    if (g->member_count == 0) {
        g->state = GROUP_EMPTY;
        g->empty_since_ms = now_ms;
        g->leader = NULL;
        log_info("group_empty", "group=%s generation=%d", g->group_id, g->generation_id);
        return;
    }
    g->protocol_name = select_protocol(g);
    if (!g->leader || g->leader->pending) {
        g->leader = NULL;
        for (m = g->members; m && !g->leader; m = m->next)
            if (!m->pending) g->leader = m;
    }
    g->state = GROUP_COMPLETING_REBALANCE;
    g->rebalance_deadline_ms = now_ms + (uint64_t)max_rebalance_timeout_ms(g);
    log_info("group_generation", "group=%s generation=%d members=%u protocol=%s leader=%s",
             g->group_id, g->generation_id, g->member_count,
             g->protocol_name ? g->protocol_name : "-", g->leader->member_id);
    for (m = g->members; m; m = m->next) {
        if (m->pending) continue;
        clear_assignment(m);
        m->last_seen_ms = now_ms;
        void *w = m->join_waiter;
        m->join_waiter = NULL;
        assert(w);
        answer_join(gc, g, m, w, m->join_version, false);
    }
}

static bool all_rejoined(const struct group *g) {
    for (const struct group_member *m = g->members; m; m = m->next)
        if (!m->pending && !m->join_waiter) return false;
    return true;
}

static void maybe_complete_join(struct group_coordinator *gc, struct group *g, uint64_t now_ms) {
    if (g->state != GROUP_PREPARING_REBALANCE) return;
    if (now_ms < g->initial_delay_until_ms) return;
    if (all_rejoined(g) || now_ms >= g->rebalance_deadline_ms) complete_join(gc, g, now_ms);
}

/* Unlink and free m, answering its parked requests; the group reacts as Kafka's
 * removeMemberAndUpdateGroup: Stable/CompletingRebalance rebalance, a rebalance in
 * progress may now be complete. */
static void remove_member(struct group_coordinator *gc, struct group *g, struct group_member *m,
                          int16_t waiter_error) {
    fail_waiters(gc, g, m, waiter_error);
    for (struct group_member **pp = &g->members; *pp; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    if (!m->pending) {
        assert(g->member_count > 0);
        g->member_count--;
    }
    if (g->leader == m) {
        g->leader = NULL;
        for (struct group_member *o = g->members; o && !g->leader; o = o->next)
            if (!o->pending) g->leader = o;
    }
    member_free(m);
}

/* After a removal outside a rebalance's own bookkeeping. */
static void after_removal(struct group_coordinator *gc, struct group *g, uint64_t now_ms,
                          const char *reason) {
    if (g->state == GROUP_STABLE || g->state == GROUP_COMPLETING_REBALANCE)
        prepare_rebalance(gc, g, now_ms, reason);
    maybe_complete_join(gc, g, now_ms);
}

/* ---- JoinGroup -------------------------------------------------------------------- */

static struct group_member *member_new(struct group_coordinator *gc, struct group *g,
                                       const struct group_join_args *a, const char *member_id,
                                       bool pending, uint64_t now_ms) {
    struct group_member *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->member_id = dup_n(member_id, strlen(member_id));
    m->client_id = dup_n(a->client_id ? a->client_id : "", a->client_id ? strlen(a->client_id) : 0);
    m->client_host =
        dup_n(a->client_host ? a->client_host : "", a->client_host ? strlen(a->client_host) : 0);
    if (a->instance_id) m->instance_id = dup_n(a->instance_id, a->instance_len);
    m->pending = pending;
    if (!m->member_id || !m->client_id || !m->client_host || (a->instance_id && !m->instance_id) ||
        !member_update(m, a, now_ms)) {
        member_free(m);
        return NULL;
    }
    struct group_member **tail = &g->members; /* join order: the first joined leads */
    while (*tail) tail = &(*tail)->next;
    *tail = m;
    if (!pending) g->member_count++;
    (void)gc;
    return m;
}

/* m (joined, not pending) sent a JoinGroup that must wait for the rebalance. */
static void park_join(struct group_coordinator *gc, struct group *g, struct group_member *m,
                      const struct group_join_args *a, uint64_t now_ms, bool is_new) {
    if (m->join_waiter) { /* a duplicate from another connection: the newer one waits */
        void *w = m->join_waiter;
        m->join_waiter = NULL;
        answer_join_error(gc, w, m->join_version, GROUP_ERR_REBALANCE_IN_PROGRESS, m->member_id);
    }
    m->join_waiter = a->waiter;
    m->join_version = a->version;
    if (g->state != GROUP_PREPARING_REBALANCE) {
        prepare_rebalance(gc, g, now_ms, is_new ? "member-joined" : "member-rejoined");
    } else if (is_new && g->initial_delay_until_ms > now_ms) {
        uint64_t until = now_ms + (uint64_t)gc->cfg.initial_rebalance_delay_ms;
        uint64_t cap = g->rebalance_start_ms + (uint64_t)max_rebalance_timeout_ms(g);
        g->initial_delay_until_ms = until < cap ? until : cap;
    }
    if (m->rebalance_timeout_ms > 0 &&
        g->rebalance_start_ms + (uint64_t)m->rebalance_timeout_ms > g->rebalance_deadline_ms)
        g->rebalance_deadline_ms = g->rebalance_start_ms + (uint64_t)m->rebalance_timeout_ms;
    maybe_complete_join(gc, g, now_ms);
}

static bool group_full(const struct group_coordinator *gc, const struct group *g) {
    uint32_t cap = gc->cfg.max_size > 0 && (uint32_t)gc->cfg.max_size < GROUP_MAX_MEMBERS
                       ? (uint32_t)gc->cfg.max_size
                       : GROUP_MAX_MEMBERS;
    return g->member_count >= cap;
}

static bool set_protocol_type(struct group *g, const struct group_join_args *a) {
    if (g->protocol_type && str_is(g->protocol_type, a->protocol_type, a->protocol_type_len))
        return true;
    char *t = dup_n(a->protocol_type, a->protocol_type_len);
    if (!t) return false;
    free(g->protocol_type);
    g->protocol_type = t;
    return true;
}

/* A static member rejoining under a new member id: the old identity is fenced. */
static bool join_static_known(struct group_coordinator *gc, struct group *g,
                              struct group_member *m, const struct group_join_args *a,
                              uint64_t now_ms) {
    char new_id[GROUP_NAME_MAX_BYTES + 1];
    group_new_member_id(gc, a->client_id, new_id);
    char *id = dup_n(new_id, strlen(new_id));
    if (!id) {
        answer_join_error(gc, a->waiter, a->version, GROUP_ERR_UNKNOWN_SERVER_ERROR, "");
        return true;
    }
    fail_waiters(gc, g, m, GROUP_ERR_FENCED_INSTANCE_ID);
    bool unchanged = protocols_equal(m, a);
    log_info("group_static_rejoin", "group=%s instance=%s old=%s new=%s", g->group_id,
             m->instance_id, m->member_id, id);
    free(m->member_id);
    m->member_id = id;
    if (m->pending) {
        m->pending = false;
        g->member_count++;
    }
    if (!member_update(m, a, now_ms)) {
        answer_join_error(gc, a->waiter, a->version, GROUP_ERR_UNKNOWN_SERVER_ERROR, "");
        return true;
    }
    if (g->state == GROUP_STABLE && unchanged) { /* keep the assignment, no rebalance */
        answer_join(gc, g, m, a->waiter, a->version, a->version >= 9 && m == g->leader);
        return true;
    }
    park_join(gc, g, m, a, now_ms, false);
    return false;
}

static bool join_new_member(struct group_coordinator *gc, struct group *g,
                            const struct group_join_args *a, uint64_t now_ms) {
    if (a->instance_id) {
        struct group_member *m = member_by_instance(g, a->instance_id, a->instance_len);
        if (m) return join_static_known(gc, g, m, a, now_ms);
    }
    if (group_full(gc, g)) {
        answer_join_error(gc, a->waiter, a->version, GROUP_ERR_GROUP_MAX_SIZE_REACHED, "");
        return true;
    }
    char id[GROUP_NAME_MAX_BYTES + 1];
    group_new_member_id(gc, a->client_id, id);
    bool pending = !a->instance_id && a->version >= 4; /* KIP-394: MEMBER_ID_REQUIRED */
    if (!set_protocol_type(g, a)) {
        answer_join_error(gc, a->waiter, a->version, GROUP_ERR_UNKNOWN_SERVER_ERROR, "");
        return true;
    }
    struct group_member *m = member_new(gc, g, a, id, pending, now_ms);
    if (!m) {
        answer_join_error(gc, a->waiter, a->version, GROUP_ERR_UNKNOWN_SERVER_ERROR, "");
        return true;
    }
    if (pending) {
        answer_join_error(gc, a->waiter, a->version, GROUP_ERR_MEMBER_ID_REQUIRED, m->member_id);
        return true;
    }
    park_join(gc, g, m, a, now_ms, true);
    return false;
}

static bool join_known_member(struct group_coordinator *gc, struct group *g,
                              const struct group_join_args *a, uint64_t now_ms) {
    struct group_member *m = group_member_find(g, a->member_id, a->member_len);
    if (a->instance_id) {
        struct group_member *owner = member_by_instance(g, a->instance_id, a->instance_len);
        if (owner && owner != m) {
            answer_join_error(gc, a->waiter, a->version, GROUP_ERR_FENCED_INSTANCE_ID, "");
            return true;
        }
    }
    if (!m || (a->instance_id && !str_is(m->instance_id, a->instance_id, a->instance_len))) {
        answer_join_error(gc, a->waiter, a->version, GROUP_ERR_UNKNOWN_MEMBER_ID, "");
        return true;
    }
    bool is_new = m->pending;
    if (m->pending) {
        if (group_full(gc, g)) {
            remove_member(gc, g, m, GROUP_ERR_GROUP_MAX_SIZE_REACHED);
            answer_join_error(gc, a->waiter, a->version, GROUP_ERR_GROUP_MAX_SIZE_REACHED, "");
            return true;
        }
        m->pending = false;
        g->member_count++;
    }
    bool unchanged = protocols_equal(m, a);
    if (!member_update(m, a, now_ms) || !set_protocol_type(g, a)) {
        answer_join_error(gc, a->waiter, a->version, GROUP_ERR_UNKNOWN_SERVER_ERROR, m->member_id);
        return true;
    }
    bool answer_now = !is_new && unchanged &&
                      ((g->state == GROUP_COMPLETING_REBALANCE) ||
                       (g->state == GROUP_STABLE && m != g->leader));
    if (answer_now) { /* nothing changed: the current generation stands */
        answer_join(gc, g, m, a->waiter, a->version, false);
        return true;
    }
    park_join(gc, g, m, a, now_ms, is_new);
    return false;
}

static void join_dispatch(struct group_coordinator *gc, const struct group_join_args *a,
                          uint64_t now_ms);

bool group_join(struct group_coordinator *gc, const struct group_join_args *a, uint64_t now_ms) {
    gc->current_waiter = a->waiter;
    gc->current_answered = false;
    join_dispatch(gc, a, now_ms);
    gc->current_waiter = NULL;
    return gc->current_answered;
}

static void join_dispatch(struct group_coordinator *gc, const struct group_join_args *a,
                          uint64_t now_ms) {
    if (a->group_len == 0 || a->group_len > GROUP_ID_MAX_BYTES) {
        answer_join_error(gc, a->waiter, a->version, GROUP_ERR_INVALID_GROUP_ID, "");
        return;
    }
    if (a->session_timeout_ms < gc->cfg.min_session_timeout_ms ||
        a->session_timeout_ms > gc->cfg.max_session_timeout_ms) {
        answer_join_error(gc, a->waiter, a->version, GROUP_ERR_INVALID_SESSION_TIMEOUT, "");
        return;
    }
    if (a->protocol_count <= 0 || a->protocol_count > GROUP_MAX_PROTOCOLS ||
        a->protocol_type_len == 0 || a->protocol_type_len > GROUP_NAME_MAX_BYTES ||
        a->member_len > GROUP_NAME_MAX_BYTES || a->instance_len > GROUP_NAME_MAX_BYTES) {
        answer_join_error(gc, a->waiter, a->version, GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL, "");
        return;
    }
    for (int i = 0; i < a->protocol_count; i++)
        if (a->protocol_name_lens[i] == 0 || a->protocol_name_lens[i] > GROUP_NAME_MAX_BYTES) {
            answer_join_error(gc, a->waiter, a->version, GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL, "");
            return;
        }
    struct group *g = group_find(gc, a->group_id, a->group_len);
    if (!g && a->member_len > 0) {
        answer_join_error(gc, a->waiter, a->version, GROUP_ERR_UNKNOWN_MEMBER_ID, "");
        return;
    }
    if (!g) g = group_get_or_create(gc, a->group_id, a->group_len, now_ms);
    if (!g) {
        answer_join_error(gc, a->waiter, a->version, GROUP_ERR_COORDINATOR_NOT_AVAILABLE, "");
        return;
    }
    if (g->state == GROUP_DEAD) {
        answer_join_error(gc, a->waiter, a->version, GROUP_ERR_COORDINATOR_NOT_AVAILABLE, "");
        return;
    }
    struct group_member *self =
        a->member_len ? group_member_find(g, a->member_id, a->member_len) : NULL;
    if (!protocols_compatible(g, a, self)) {
        answer_join_error(gc, a->waiter, a->version, GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL, "");
        return;
    }
    if (a->member_len == 0) join_new_member(gc, g, a, now_ms);
    else join_known_member(gc, g, a, now_ms);
}

/* ---- SyncGroup / Heartbeat / LeaveGroup -------------------------------------------- */

/* The member a request names, or the error: unknown member, fenced instance. */
static int16_t member_check(struct group *g, const char *member_id, size_t member_len,
                            const char *instance_id, size_t instance_len,
                            struct group_member **out) {
    *out = NULL;
    if (!g || g->state == GROUP_DEAD) return GROUP_ERR_UNKNOWN_MEMBER_ID;
    struct group_member *m = group_member_find(g, member_id, member_len);
    if (instance_id) {
        struct group_member *owner = member_by_instance(g, instance_id, instance_len);
        if (owner && owner != m) return GROUP_ERR_FENCED_INSTANCE_ID;
    }
    if (!m || m->pending) return GROUP_ERR_UNKNOWN_MEMBER_ID;
    if (instance_id && !str_is(m->instance_id, instance_id, instance_len))
        return GROUP_ERR_FENCED_INSTANCE_ID;
    *out = m;
    return GROUP_ERR_NONE;
}

/* The leader's assignment: store each member's, then answer every parked SyncGroup. */
static void apply_assignment(struct group_coordinator *gc, struct group *g,
                             const struct group_sync_assignment *as, int count) {
    for (struct group_member *m = g->members; m; m = m->next) clear_assignment(m);
    for (int i = 0; i < count; i++) {
        struct group_member *m = group_member_find(g, as[i].member_id, as[i].member_len);
        if (!m || m->pending || m->assignment) continue;
        m->assignment = malloc(as[i].assignment_bytes ? as[i].assignment_bytes : 1);
        if (!m->assignment) continue; /* it gets an empty assignment and rejoins */
        if (as[i].assignment_bytes) memcpy(m->assignment, as[i].assignment, as[i].assignment_bytes);
        m->assignment_bytes = as[i].assignment_bytes;
    }
    g->state = GROUP_STABLE;
    log_info("group_stable", "group=%s generation=%d members=%u", g->group_id, g->generation_id,
             g->member_count);
    for (struct group_member *m = g->members; m; m = m->next) {
        if (!m->sync_waiter) continue;
        void *w = m->sync_waiter;
        m->sync_waiter = NULL;
        answer_sync(gc, g, w, GROUP_ERR_NONE, m->assignment, m->assignment_bytes);
    }
}

static void sync_dispatch(struct group_coordinator *gc, const char *group_id, size_t group_len,
                          int32_t generation_id, const char *member_id, size_t member_len,
                          const char *instance_id, size_t instance_len,
                          const char *protocol_type, size_t protocol_type_len,
                          const char *protocol_name, size_t protocol_name_len,
                          const struct group_sync_assignment *assignments, int assignment_count,
                          void *waiter, uint64_t now_ms);

bool group_sync(struct group_coordinator *gc, const char *group_id, size_t group_len,
                int32_t generation_id, const char *member_id, size_t member_len,
                const char *instance_id, size_t instance_len,
                const char *protocol_type, size_t protocol_type_len,
                const char *protocol_name, size_t protocol_name_len,
                const struct group_sync_assignment *assignments, int assignment_count,
                void *waiter, uint64_t now_ms) {
    gc->current_waiter = waiter;
    gc->current_answered = false;
    sync_dispatch(gc, group_id, group_len, generation_id, member_id, member_len, instance_id,
                  instance_len, protocol_type, protocol_type_len, protocol_name,
                  protocol_name_len, assignments, assignment_count, waiter, now_ms);
    gc->current_waiter = NULL;
    return gc->current_answered;
}

static void sync_dispatch(struct group_coordinator *gc, const char *group_id, size_t group_len,
                          int32_t generation_id, const char *member_id, size_t member_len,
                          const char *instance_id, size_t instance_len,
                          const char *protocol_type, size_t protocol_type_len,
                          const char *protocol_name, size_t protocol_name_len,
                          const struct group_sync_assignment *assignments, int assignment_count,
                          void *waiter, uint64_t now_ms) {
    struct group *g = group_find(gc, group_id, group_len);
    struct group_member *m;
    int16_t err = member_check(g, member_id, member_len, instance_id, instance_len, &m);
    if (err == GROUP_ERR_NONE && generation_id != g->generation_id)
        err = GROUP_ERR_ILLEGAL_GENERATION;
    if (err == GROUP_ERR_NONE &&
        ((protocol_type && !str_is(g->protocol_type, protocol_type, protocol_type_len)) ||
         (protocol_name && !str_is(g->protocol_name, protocol_name, protocol_name_len))))
        err = GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL;
    if (err == GROUP_ERR_NONE && g->state == GROUP_PREPARING_REBALANCE)
        err = GROUP_ERR_REBALANCE_IN_PROGRESS;
    if (err == GROUP_ERR_NONE && g->state == GROUP_EMPTY) err = GROUP_ERR_UNKNOWN_MEMBER_ID;
    if (err != GROUP_ERR_NONE) {
        answer_sync(gc, g, waiter, err, NULL, 0);
        return;
    }
    m->last_seen_ms = now_ms;
    if (g->state == GROUP_STABLE) {
        answer_sync(gc, g, waiter, GROUP_ERR_NONE, m->assignment, m->assignment_bytes);
        return;
    }
    assert(g->state == GROUP_COMPLETING_REBALANCE);
    if (m->sync_waiter) {
        void *w = m->sync_waiter;
        m->sync_waiter = NULL;
        answer_sync(gc, g, w, GROUP_ERR_REBALANCE_IN_PROGRESS, NULL, 0);
    }
    m->sync_waiter = waiter;
    if (m == g->leader) {
        apply_assignment(gc, g, assignments, assignment_count);
        return;
    }
    return;
}

int16_t group_heartbeat(struct group_coordinator *gc, const char *group_id, size_t group_len,
                        int32_t generation_id, const char *member_id, size_t member_len,
                        const char *instance_id, size_t instance_len, uint64_t now_ms) {
    struct group *g = group_find(gc, group_id, group_len);
    struct group_member *m;
    int16_t err = member_check(g, member_id, member_len, instance_id, instance_len, &m);
    if (err != GROUP_ERR_NONE) return err;
    if (g->state == GROUP_EMPTY) return GROUP_ERR_UNKNOWN_MEMBER_ID;
    m->last_seen_ms = now_ms;
    if (g->state == GROUP_PREPARING_REBALANCE) return GROUP_ERR_REBALANCE_IN_PROGRESS;
    if (generation_id != g->generation_id) return GROUP_ERR_ILLEGAL_GENERATION;
    return GROUP_ERR_NONE;
}

int16_t group_leave(struct group_coordinator *gc, const char *group_id, size_t group_len,
                    const char *member_id, size_t member_len, const char *instance_id,
                    size_t instance_len, uint64_t now_ms) {
    struct group *g = group_find(gc, group_id, group_len);
    if (!g || g->state == GROUP_DEAD) return GROUP_ERR_UNKNOWN_MEMBER_ID;
    struct group_member *m;
    if (member_len == 0 && instance_id) {
        m = member_by_instance(g, instance_id, instance_len);
        if (!m) return GROUP_ERR_UNKNOWN_MEMBER_ID;
    } else {
        int16_t err = member_check(g, member_id, member_len, instance_id, instance_len, &m);
        if (err != GROUP_ERR_NONE) return err;
    }
    log_info("group_member_left", "group=%s member=%s", g->group_id, m->member_id);
    remove_member(gc, g, m, GROUP_ERR_UNKNOWN_MEMBER_ID);
    after_removal(gc, g, now_ms, "member-left");
    return GROUP_ERR_NONE;
}

int16_t group_commit_check(struct group_coordinator *gc, const char *group_id,
                           size_t group_len, int32_t generation_id, const char *member_id,
                           size_t member_len, const char *instance_id, size_t instance_len,
                           uint64_t now_ms) {
    if (group_len == 0 || group_len > GROUP_ID_MAX_BYTES) return GROUP_ERR_INVALID_GROUP_ID;
    struct group *g = group_find(gc, group_id, group_len);
    if (generation_id < 0 && member_len == 0 && !instance_id) { /* a simple commit */
        if (!g || g->member_count == 0) return GROUP_ERR_NONE;
        return GROUP_ERR_UNKNOWN_MEMBER_ID;
    }
    if (!g) return GROUP_ERR_ILLEGAL_GENERATION;
    if (g->state == GROUP_DEAD) return GROUP_ERR_COORDINATOR_NOT_AVAILABLE;
    struct group_member *m;
    int16_t err = member_check(g, member_id, member_len, instance_id, instance_len, &m);
    if (err != GROUP_ERR_NONE) return err;
    if (generation_id != g->generation_id) return GROUP_ERR_ILLEGAL_GENERATION;
    if (g->state == GROUP_COMPLETING_REBALANCE) return GROUP_ERR_REBALANCE_IN_PROGRESS;
    m->last_seen_ms = now_ms;
    return GROUP_ERR_NONE;
}

int16_t group_delete_check(struct group_coordinator *gc, const char *group_id, size_t len) {
    struct group *g = group_find(gc, group_id, len);
    if (len == 0 || len > GROUP_ID_MAX_BYTES) return GROUP_ERR_INVALID_GROUP_ID;
    if (!g || g->state == GROUP_DEAD) return GROUP_ERR_GROUP_ID_NOT_FOUND;
    if (g->state != GROUP_EMPTY || g->member_count > 0) return GROUP_ERR_NON_EMPTY_GROUP;
    if (g->commits_in_flight > 0) return GROUP_ERR_REBALANCE_IN_PROGRESS; /* retriable */
    return GROUP_ERR_NONE;
}

int16_t group_delete(struct group_coordinator *gc, const char *group_id, size_t len) {
    int16_t ec = group_delete_check(gc, group_id, len);
    if (ec != GROUP_ERR_NONE) return ec;
    struct group *g = group_find(gc, group_id, len);
    while (g->members) { /* pending members only */
        struct group_member *m = g->members;
        remove_member(gc, g, m, GROUP_ERR_UNKNOWN_MEMBER_ID);
    }
    group_unlink(gc, g);
    log_info("group_deleted", "group=%s", g->group_id);
    group_free(g);
    return GROUP_ERR_NONE;
}

/* ---- timers ---------------------------------------------------------------------- */

static unsigned expire_members(struct group_coordinator *gc, struct group *g, uint64_t now_ms) {
    unsigned removed = 0;
    struct group_member *m = g->members;
    while (m) {
        struct group_member *next = m->next;
        bool waiting = m->join_waiter || m->sync_waiter;
        if (!waiting && now_ms >= m->last_seen_ms + (uint64_t)m->session_timeout_ms) {
            log_info("group_member_removed", "group=%s member=%s reason=session-timeout",
                     g->group_id, m->member_id);
            remove_member(gc, g, m, GROUP_ERR_UNKNOWN_MEMBER_ID);
            removed++;
        }
        m = next;
    }
    if (removed) after_removal(gc, g, now_ms, "session-timeout");
    return removed;
}

/* CompletingRebalance without the leader's assignment for a rebalance timeout: the
 * members that did not sync go, the rest rebalance again. */
static unsigned expire_sync(struct group_coordinator *gc, struct group *g, uint64_t now_ms) {
    if (g->state != GROUP_COMPLETING_REBALANCE || now_ms < g->rebalance_deadline_ms) return 0;
    unsigned removed = 0;
    struct group_member *m = g->members;
    while (m) {
        struct group_member *next = m->next;
        if (!m->pending && !m->sync_waiter) {
            remove_member(gc, g, m, GROUP_ERR_UNKNOWN_MEMBER_ID);
            removed++;
        }
        m = next;
    }
    prepare_rebalance(gc, g, now_ms, "sync-timeout");
    return removed + 1;
}

/* An Empty group's offsets after offsets.retention.minutes; true when g was freed. */
static bool expire_offsets(struct group_coordinator *gc, struct group *g, uint64_t now_ms) {
    if (g->state != GROUP_EMPTY || g->members || g->commits_in_flight > 0) return false;
    uint64_t since = g->empty_since_ms > g->last_commit_ms ? g->empty_since_ms : g->last_commit_ms;
    if (gc->cfg.offsets_retention_ms < 0 || now_ms < since + (uint64_t)gc->cfg.offsets_retention_ms)
        return false;
    log_info("group_offsets_expired", "group=%s offsets=%u", g->group_id, g->offsets.count);
    if (gc->replies.expired) gc->replies.expired(gc->replies.ctx, g);
    group_unlink(gc, g);
    group_free(g);
    return true;
}

unsigned group_tick(struct group_coordinator *gc, uint64_t now_ms) {
    unsigned work = 0;
    struct group *g = gc->groups;
    while (g) {
        struct group *next = g->next;
        work += expire_members(gc, g, now_ms);
        work += expire_sync(gc, g, now_ms);
        if (g->state == GROUP_PREPARING_REBALANCE) {
            enum group_state before = g->state;
            maybe_complete_join(gc, g, now_ms);
            work += g->state != before;
        }
        if (expire_offsets(gc, g, now_ms)) work++;
        g = next;
    }
    return work;
}
