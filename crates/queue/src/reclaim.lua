-- Reclaim idle pending entries, dead-lettering those delivered too often.
-- Runs atomically, so no other client sees an entry half-moved.
--
-- KEYS[1]  the stream            KEYS[2]  its dead-letter stream
-- ARGV[1]  group   ARGV[2]  consumer   ARGV[3]  min idle (ms)
-- ARGV[4]  count   ARGV[5]  max deliveries
--
-- Returns { {id, payload, deliveries}..., }, { dead-lettered original id... }
local stream, dead_stream = KEYS[1], KEYS[2]
local group = ARGV[1]
local max_deliveries = tonumber(ARGV[5])

local reply = redis.call('XAUTOCLAIM', stream, group, ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[4])
local delivered, dead = {}, {}
for _, entry in ipairs(reply[2]) do
  local id, fields = entry[1], entry[2]
  if not fields then
    -- Redis 6.2 returns entries trimmed away while pending with nil fields
    -- and keeps them pending; 7.0+ drops them itself.
    redis.call('XACK', stream, group, id)
  else
    local payload = ''
    for i = 1, #fields, 2 do
      if fields[i] == 'p' then
        payload = fields[i + 1]
      end
    end
    -- XAUTOCLAIM has already counted this delivery.
    local info = redis.call('XPENDING', stream, group, id, id, 1)[1]
    local deliveries = info and tonumber(info[4]) or 1
    if deliveries > max_deliveries then
      -- Ack first and move only what this call acked: an entry is never
      -- dead-lettered twice, even by racing reclaimers.
      if redis.call('XACK', stream, group, id) == 1 then
        redis.call('XADD', dead_stream, '*',
          'payload', payload,
          'original_id', id,
          'deliveries', tostring(deliveries - 1),
          'group', group)
        table.insert(dead, id)
      end
    else
      table.insert(delivered, { id, payload, deliveries })
    end
  end
end
return { delivered, dead }
