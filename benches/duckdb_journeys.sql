-- The `journeys` table of SPEC §2 as a data team would compute it in batch with DuckDB,
-- over the same NDJSON file omnimeter reads: `cargo bench --bench perf` runs and times it
-- ($INPUT and $OUTPUT are replaced by the bench). Default settings: gap 30m, thread_gap 24h,
-- reply_sla 15m, max_path 12.
--
-- Covered as SPEC §2 defines: journey keys (customer_id, journey_id), the gap rule (events
-- exactly `gap` apart start a new journey), (ts, event_id) order, start/end/duration,
-- events, path with consecutive repeats collapsed and truncated after 12 segments, hops,
-- channels, first/last channel, outcome precedence, conversion_value, resolution_ms,
-- first_contact_resolution, repeat_contacts, unanswered_contacts (the first later reply or
-- resolution within the SLA), errors; duplicates as a repeated event_id within a journey.
-- Not covered: validation and the rejection reasons of SPEC §1 (malformed lines are
-- skipped), and event time as a stream — no watermark, so no `late` events: the SQL sees
-- the whole file at once, which a stream processor cannot.
COPY (
WITH raw AS (
    SELECT * FROM read_json('$INPUT', format = 'newline_delimited', ignore_errors = true,
        columns = {event_id: 'VARCHAR', ts: 'VARCHAR', customer_id: 'VARCHAR', journey_id: 'VARCHAR',
                   channel: 'VARCHAR', "type": 'VARCHAR', step: 'VARCHAR', "value": 'DOUBLE'})
),
events AS (
    SELECT event_id, customer_id, journey_id, channel, "type" AS ty, coalesce("value", 0) AS val,
        -- `ts` is epoch milliseconds or an RFC 3339 string with an offset.
        CASE WHEN regexp_full_match(ts, '-?[0-9]+') THEN ts::BIGINT
             ELSE epoch_ms(ts::TIMESTAMPTZ) END AS ts,
        CASE WHEN journey_id IS NULL THEN 1800000 ELSE 86400000 END AS gap
    FROM raw
    WHERE event_id IS NOT NULL AND customer_id IS NOT NULL AND channel IS NOT NULL AND "type" IS NOT NULL
),
breaks AS (
    SELECT *, ts - lag(ts) OVER key_order >= gap OR lag(ts) OVER key_order IS NULL AS starts
    FROM events
    WINDOW key_order AS (PARTITION BY customer_id, journey_id ORDER BY ts, event_id)
),
numbered AS (
    SELECT *, sum(starts::INT) OVER (PARTITION BY customer_id, journey_id ORDER BY ts, event_id
                                      ROWS UNBOUNDED PRECEDING) AS journey_no
    FROM breaks
),
deduplicated AS (
    -- A repeated event_id inside a journey is a duplicate: the first in (ts, event_id) order counts.
    SELECT * FROM numbered
    QUALIFY row_number() OVER (PARTITION BY customer_id, journey_id, journey_no, event_id ORDER BY ts) = 1
),
steps AS (
    SELECT *,
        lag(channel) OVER j IS DISTINCT FROM channel AS new_segment,
        -- First later reply or resolution (any channel): answers a contact when within the SLA.
        min(CASE WHEN ty IN ('reply', 'request_resolved') THEN ts END)
            OVER (j ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS next_answer,
        row_number() OVER j AS pos
    FROM deduplicated
    WINDOW j AS (PARTITION BY customer_id, journey_id, journey_no ORDER BY ts, event_id)
),
openers AS (
    -- Opener: first request_opened, else first contact; resolver: first request_resolved at or after it.
    SELECT *,
        coalesce(min(pos) FILTER (WHERE ty = 'request_opened') OVER jk,
                 min(pos) FILTER (WHERE ty = 'contact') OVER jk) AS opener_pos
    FROM steps
    WINDOW jk AS (PARTITION BY customer_id, journey_id, journey_no)
),
resolvers AS (
    SELECT *, min(pos) FILTER (WHERE ty = 'request_resolved' AND pos >= opener_pos) OVER jk AS resolver_pos,
        max(CASE WHEN pos = opener_pos THEN channel END) OVER jk AS opener_channel
    FROM openers
    WINDOW jk AS (PARTITION BY customer_id, journey_id, journey_no)
),
journeys AS (
    SELECT customer_id, journey_id,
        min(ts) AS start_ms, max(ts) AS end_ms,
        count(*) AS events,
        list(channel ORDER BY pos) FILTER (WHERE new_segment) AS segments,
        arg_min(channel, pos) AS first_channel,
        arg_max(channel, pos) AS last_channel,
        bool_or(ty = 'conversion') AS converted, bool_or(ty = 'request_resolved') AS resolved,
        bool_or(ty = 'abandon') AS abandoned, bool_or(ty IN ('request_opened', 'contact')) AS opened,
        sum(val) FILTER (WHERE ty = 'conversion') AS conversion_value,
        max(ts) FILTER (WHERE pos = resolver_pos) - max(ts) FILTER (WHERE pos = opener_pos) AS resolution_ms,
        bool_and(channel = opener_channel) FILTER (WHERE pos BETWEEN opener_pos AND resolver_pos)
            AND count(*) FILTER (WHERE ty = 'contact' AND pos BETWEEN opener_pos AND resolver_pos) <= 1 AS fcr,
        count(*) FILTER (WHERE ty = 'contact') AS contacts,
        count(*) FILTER (WHERE ty = 'contact' AND (next_answer IS NULL OR next_answer > ts + 900000)) AS unanswered,
        count(*) FILTER (WHERE ty = 'error') AS errors
    FROM resolvers
    GROUP BY customer_id, journey_id, journey_no
)
SELECT customer_id, journey_id,
    make_timestamp(start_ms * 1000) AS start_ts, make_timestamp(end_ms * 1000) AS end_ts,
    end_ms - start_ms AS duration_ms, events,
    array_to_string(segments[1:12], '>') || CASE WHEN len(segments) > 12 THEN '>…' ELSE '' END AS path,
    len(segments) - 1 AS hops,
    len(list_distinct(segments)) AS channels,
    first_channel, last_channel,
    CASE WHEN converted THEN 'converted' WHEN resolved THEN 'resolved' WHEN abandoned THEN 'abandoned'
         WHEN opened THEN 'unresolved' ELSE 'browsed' END AS outcome,
    coalesce(conversion_value, 0) AS conversion_value,
    resolution_ms,
    CASE WHEN resolution_ms IS NULL THEN NULL ELSE fcr END AS first_contact_resolution,
    greatest(contacts - 1, 0) AS repeat_contacts,
    unanswered AS unanswered_contacts,
    errors
FROM journeys
) TO '$OUTPUT' (FORMAT parquet);
